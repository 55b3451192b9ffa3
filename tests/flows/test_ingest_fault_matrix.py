"""The fault matrix, small: a backfill through the replay with every fault kind (empty and short
pages, a still-open row, a one-day Retry-After among them) loses and duplicates nothing."""

from __future__ import annotations

from storage.recorded import load_recorded
from tests.support.fault_matrix import KINDS, run_matrix
from tests.support.paths import shared_file
from tests.support.realdata import POLONIEX_30M


def test_every_fault_kind_in_one_backfill_loses_and_duplicates_nothing(prefect_api, data_dir):
    source = load_recorded(shared_file(POLONIEX_30M)).iloc[:12_000]  # 24 pages, 8 months
    result = run_matrix(source, data_dir, spacing=2, in_flight=1, limit_s=240,
                        interval="MINUTE_30")  # fmt: skip
    assert set(result.faults) == set(KINDS)  # every kind injected at least once
    assert (result.lost, result.duplicated, result.changed, result.extra) == (0, 0, 0, 0)
    assert result.wall_s < 240
