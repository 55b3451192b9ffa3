"""Walk-forward folds: rolling-origin train/validation/test per fold, checked from stored times
in real window files; one fold is today's split; bad fold settings refused naming them."""

from __future__ import annotations

import numpy as np
import pytest

from storage.errors import BadInputError
from tasks.windows.cut import fold_row_bounds, honest_row_bounds
from tasks.windows.spec import WindowSpec
from tests.support.windows import real_candles

PAST, FUTURE, FOLDS = 32, 4, 4
INTERVAL_MS = 300_000


def _fold_files(tmp_path, mode):
    from tasks.windows import open_dataset, write_windows

    candles = real_candles(3000)
    out = []
    for k in range(FOLDS):
        spec = WindowSpec(past=PAST, future=FUTURE, stride=3, folds=FOLDS, fold=k, fold_mode=mode,
                          scaler="window")
        summary = write_windows(candles, "BTC_USDT", "MINUTE_5", spec, tmp_path / mode)
        with open_dataset(summary["path"]) as ds:
            times = {s: ds.split_times(s) for s in ("train", "validation", "test")}
            out.append((summary, times, ds.attrs))
    return out


@pytest.mark.parametrize("mode", ["expanding", "sliding"])
def test_each_fold_tests_after_it_trains_and_validates_and_test_blocks_follow(tmp_path, mode):
    files = _fold_files(tmp_path, mode)
    ids = {s["dataset_id"] for s, _, _ in files}
    assert len(ids) == FOLDS  # a file per fold
    test_spans = []
    train_sizes = []
    for summary, times, attrs in files:
        (tr_in, tr_out), (va_in, va_out), (te_in, te_out) = (
            times["train"], times["validation"], times["test"])
        assert min(len(tr_in), len(va_in), len(te_in)) > 0, summary
        # no window of a later split touches a candle of an earlier one (the embargo)
        assert tr_out.max() < va_in.min()
        assert va_out.max() < te_in.min()
        test_spans.append((int(te_in.min()), int(te_out.max())))
        train_sizes.append(len(tr_in))
        assert attrs["counts"]["fold"] == attrs["spec"]["fold"]
    for (lo_a, hi_a), (lo_b, _) in zip(test_spans, test_spans[1:], strict=False):
        assert hi_a < lo_b  # test blocks never overlap and move forward in time
    if mode == "expanding":
        assert train_sizes == sorted(train_sizes) and train_sizes[-1] > train_sizes[0]
        assert all(t["train"][0].min() == files[0][1]["train"][0].min() for _, t, _ in files)
    else:  # same length of training rows, sliding forward
        starts = [t["train"][0].min() for _, t, _ in files]
        assert starts == sorted(starts) and starts[-1] > starts[0]
        assert max(train_sizes) - min(train_sizes) <= 2


def test_fold_k_validates_on_the_test_block_of_fold_k_minus_1():
    for sliding in (False, True):
        bounds = [fold_row_bounds(10_000, (0.7, 0.15, 0.15), 5, k, sliding) for k in range(5)]
        for prev, cur in zip(bounds, bounds[1:], strict=False):
            assert cur[1] == prev[2]
        assert bounds[-1][2][1] == 10_000  # the last test block ends at the last row
        # fold 0: 10000 / (1 + 4 * 0.15) = 6250 rows in 70:15:15, 5312.5 rounded half to even
        assert bounds[0] == [(0, 4375), (4375, 5312), (5312, 6250)]


def test_one_fold_is_the_single_split_and_keeps_the_dataset_id():
    assert fold_row_bounds(1234, (0.7, 0.15, 0.15), 1, 0, True) == honest_row_bounds(
        1234, (0.7, 0.15, 0.15))
    assert "folds" not in WindowSpec().to_dict() and "fold" not in WindowSpec().to_dict()
    assert WindowSpec(folds=3, fold=2).to_dict()["fold"] == 2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"folds": 0}, "^folds must be at least 1"),
        ({"folds": 3, "fold": 3}, "^fold must be in 0..2"),
        ({"folds": 2, "protocol": "seed"}, "^folds: the seed protocol"),
        ({"folds": 2, "fold_mode": "sideways"}, "fold_mode"),
    ],
)
def test_bad_fold_settings_are_refused_naming_them(kwargs, message):
    with pytest.raises(BadInputError, match=message):
        WindowSpec(**kwargs)


def test_folds_that_leave_a_split_too_short_are_refused_naming_folds(tmp_path):
    from tasks.windows import write_windows

    spec = WindowSpec(past=256, future=16, folds=40, fold=0)
    with pytest.raises(BadInputError, match="^folds: with 40 folds the .* split of fold 0"):
        write_windows(real_candles(3000), "BTC_USDT", "MINUTE_5", spec, tmp_path / "w")
    assert not (tmp_path / "w").exists() or not any((tmp_path / "w").iterdir())


def test_window_times_are_whole_candles_inside_their_fold(tmp_path):
    """Sanity of the stored times: consecutive candles, and inside the fold's row span."""
    files = _fold_files(tmp_path, "sliding")
    for _, times, attrs in files:
        tr_in = times["train"][0]
        assert np.all(np.diff(tr_in, axis=1) == INTERVAL_MS)
        bounds = attrs["split_bounds"]
        assert tr_in.min() >= bounds["train"]["time_start_ms"]
        assert times["test"][1].max() <= bounds["test"]["time_end_ms"]
