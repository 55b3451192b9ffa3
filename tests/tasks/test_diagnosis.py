"""Diagnosis: the out-of-range share on crafted inputs and the verdict sentences' rules."""

from __future__ import annotations

import numpy as np
import pytest

from tasks.metrics import out_of_range_share
from tasks.report.diagnosis import verdict


def test_out_of_range_share_counts_values_outside_the_training_range():
    train = np.array([[0.0, 0.5], [1.0, 0.2]])  # range [0, 1]
    ev = np.array([[0.5, 1.5, -0.1, 1.0], [0.0, 2.0, 0.9, 0.99]])  # 3 of 8 outside
    assert out_of_range_share(train, ev) == pytest.approx(3 / 8)
    assert out_of_range_share(train, train) == 0.0
    assert np.isnan(out_of_range_share(train, np.empty((0, 4))))


@pytest.mark.parametrize(
    ("row", "share", "start"),
    [
        ({"model": "gru", "skill": 0.12, "dm_p": 0.003}, 0.0, "beats persistence (p=0.003)"),
        ({"model": "gru", "skill": -0.02, "dm_p": 0.4}, 0.0,
         "indistinguishable from persistence (p=0.4)"),
        ({"model": "gru", "skill": 0.01, "dm_p": 0.2}, 0.9, "indistinguishable"),
        ({"model": "gru", "skill": -0.3, "dm_p": 0.01}, 0.0, "worse than persistence (p=0.01)"),
        ({"model": "gru", "skill": -994.0, "dm_p": 1e-9}, 0.87,
         "collapses out of range (skill -994.00; 87% of test inputs"),
        ({"model": "gru", "skill": -994.0, "dm_p": 1e-9}, 0.0, "worse than persistence (p<1e-4)"),
        ({"model": "persistence", "skill": 0.0, "dm_p": None}, 0.5, "the reference"),
        ({"model": "gru", "skill": None, "dm_p": None}, 0.0, "not scored"),
    ],
)
def test_verdicts(row, share, start):
    assert verdict(row, share).startswith(start)
