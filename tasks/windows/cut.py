"""Pure windowing over arrays: zero-copy windows, the tutorial's starts, gaps, split rows."""

from __future__ import annotations

import numpy as np
import pandas as pd

from storage.errors import BadInputError
from storage.schema import to_ms
from storage.windows.format import SPLIT_CODES
from tasks.windows.spec import Feature, Protocol, WindowSpec


def make_windows(
    values: np.ndarray, past: int, future: int, stride: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Zero-copy views (n_windows, past, F) and (n_windows, future, F) over values (n, F)."""
    values = np.asarray(values)
    if values.ndim == 1:
        values = values[:, None]
    m = past + future
    if past <= 0 or future <= 0 or stride <= 0:
        raise BadInputError("past, future and stride must be positive")
    if values.shape[0] < m:
        empty = np.lib.stride_tricks.sliding_window_view(np.empty((m, values.shape[1])), m, 0)[:0]
        return empty.transpose(0, 2, 1)[:, :past], empty.transpose(0, 2, 1)[:, past:]
    view = np.lib.stride_tricks.sliding_window_view(values, m, axis=0)  # (n-m+1, F, m)
    view = view.transpose(0, 2, 1)[::stride]  # (n_windows, m, F)
    return view[:, :past], view[:, past:]


def seed_window_starts(n: int, past: int, future: int, sliding: bool) -> np.ndarray:
    """The tutorial's window starts (n_windows,): every row, or its non-overlapping edge rule."""
    m = past + future
    if sliding:
        return np.arange(max(0, n - m + 1), dtype=np.int64)
    if n % m == 0:
        return np.arange(0, n, m, dtype=np.int64)
    return np.arange(0, n - m, m, dtype=np.int64)  # the tutorial's rule, kept verbatim


def clean_windows(breaks: np.ndarray, bad_rows: np.ndarray, length: int) -> np.ndarray:
    """Mask (n - length + 1,): window at each start has no break between rows and no bad row.

    ``breaks`` (n-1,) bool marks a gap between row i and i+1; ``bad_rows`` (n,) bool.
    """
    n = bad_rows.size
    if n < length:
        return np.zeros(0, dtype=bool)
    gap_cum = np.concatenate([[0], np.cumsum(breaks, dtype=np.int64)])  # (n,)
    bad_cum = np.concatenate([[0], np.cumsum(bad_rows, dtype=np.int64)])  # (n+1,)
    s = np.arange(n - length + 1)
    gaps_inside = gap_cum[s + length - 1] - gap_cum[s]
    bad_inside = bad_cum[s + length] - bad_cum[s]
    return (gaps_inside == 0) & (bad_inside == 0)


def honest_row_bounds(n_rows: int, splits: tuple[float, ...]) -> list[tuple[int, int]]:
    """Chronological [lo, hi) candle-row range of each split from its fraction."""
    bounds, lo, acc = [], 0, 0.0
    for frac in splits:
        acc += frac
        hi = min(n_rows, int(round(acc * n_rows)))
        bounds.append((lo, hi))
        lo = hi
    return bounds


def feature_matrix(
    candles: pd.DataFrame, features: tuple[Feature, ...], interval_ms: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(values (n, F) float64, open times (n,) int64 ms) from typed candles, oldest first.

    With ``log_return`` the first candle is dropped (it has no previous close); with
    ``interval_ms`` a log return across a gap is NaN (so no clean window uses it).
    """
    times = to_ms(candles["open_time"])
    if times.size > 1 and np.any(np.diff(times) <= 0):
        raise BadInputError("candles must be sorted by open_time without duplicates")
    cols = []
    for feat in features:
        if feat is Feature.LOG_RETURN:
            close = candles["close"].to_numpy(dtype=np.float64)
            with np.errstate(divide="ignore", invalid="ignore"):
                col = np.concatenate([[np.nan], np.diff(np.log(close))])
            if interval_ms is not None:
                col[1:][np.diff(times) != interval_ms] = np.nan
        else:
            col = candles[feat.value].to_numpy(dtype=np.float64)
        cols.append(col)
    values = np.column_stack(cols) if cols else np.empty((times.size, 0))
    if Feature.LOG_RETURN in features:
        return values[1:], times[1:]
    return values, times


def fold_row_bounds(
    n_rows: int, splits: tuple[float, ...], folds: int, fold: int, sliding: bool
) -> list[tuple[int, int]]:
    """[lo, hi) rows of train, validation and test of one walk-forward (rolling-origin) fold.

    The rows the splits cover (``sum(splits)`` of the series) hold ``folds`` test blocks
    back to back at their end; fold ``k`` tests on block ``k`` and validates on the rows just
    before it. The first fold has the ``splits`` proportions; later folds move on by one test
    block, training from the first row (expanding) or on as many rows as the first (sliding).
    One fold is :func:`honest_row_bounds`.
    """
    if folds == 1:
        return honest_row_bounds(n_rows, splits)
    f_train, f_val, f_test = splits
    total = sum(splits)
    used = min(n_rows, int(round(total * n_rows)))
    first = used / (1 + (folds - 1) * f_test / total)  # rows of fold 0
    test, val, train = first * f_test / total, first * f_val / total, first * f_train / total
    end = first + fold * test
    cuts = [end - test - val - train, end - test - val, end - test, end]
    lo, v_lo, t_lo, hi = (min(used, int(round(c))) for c in cuts)
    return [(0 if not sliding else max(0, lo), v_lo), (v_lo, t_lo), (t_lo, hi)]


def split_row_bounds(n_rows: int, spec: WindowSpec) -> list[tuple[int, int]]:
    """Candle rows of each split under ``spec`` (honest; its fold when walk-forward)."""
    return fold_row_bounds(n_rows, spec.splits, spec.folds, spec.fold,
                           sliding=spec.fold_mode.value == "sliding")


def check_length(n_rows: int, spec: WindowSpec) -> None:
    """``BadInputError`` unless the series holds at least one window (each honest split too)."""
    m = spec.window_length
    if n_rows < m:
        raise BadInputError(
            f"past+future={m} is longer than the data ({n_rows} candles); lower past or future"
        )
    if spec.protocol is Protocol.HONEST:
        for name, (lo, hi) in zip(SPLIT_CODES, split_row_bounds(n_rows, spec), strict=False):
            if hi - lo < m and spec.folds > 1:
                raise BadInputError(
                    f"folds: with {spec.folds} folds the {name} split of fold {spec.fold} gets "
                    f"{hi - lo} of {n_rows} candles, fewer than past+future={m}; use fewer "
                    "folds, a shorter window or more data"
                )
            if hi - lo < m:
                raise BadInputError(
                    f"splits: the {name} split gets {hi - lo} of {n_rows} candles, fewer than "
                    f"past+future={m}; use larger fractions, a shorter window or more data"
                )
