"""Window plans per protocol: the tutorial's ``seed`` and the ``honest`` default.

* ``seed``: the tutorial's ``PastSampler`` bit for bit: windows over the whole series (gaps
  ignored), MinMax fit on every row, float64, times in Poloniex ``date`` seconds with shape
  ``(n, N, 1)``, first ``int(0.8 * n)`` windows train and the rest validation.
* ``honest``: stride 1 by default; chronological train/validation/test row ranges (70/15/15);
  a window belongs to a split only when all its N+K candles lie inside that split's rows, so the
  N+K-1 windows straddling each boundary are dropped (the embargo) and no window of a later
  split overlaps an earlier split's span; the scaler is fit on the training rows only; windows
  that span a gap in the candle series are dropped and counted; float32 windows, ms times.
  With ``scaler="window"`` nothing is fit: rows are stored unscaled and each window is divided
  by its own last input close when read (``tasks.windows.WindowDataset``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from storage.errors import BadInputError
from storage.schema import Interval
from storage.windows.format import SPLIT_CODES, WindowArrays
from tasks.scaling import Scaler, ScalerKind
from tasks.windows.cut import (
    check_length,
    clean_windows,
    feature_matrix,
    seed_window_starts,
    split_row_bounds,
)
from tasks.windows.spec import Protocol, WindowSpec, target_index


@dataclass(frozen=True)
class WindowPlan:
    """A window set ready to write: arrays O(n_rows) plus starts/split (n_windows,), and counts."""

    spec: WindowSpec
    arrays: WindowArrays
    scaler: Scaler
    time_unit: str
    split_bounds: dict[str, dict[str, int]]
    counts: dict[str, int]

    @property
    def target_feature(self) -> int:
        """Index of ``close`` among the features (else of ``log_return``, else 0)."""
        return target_index(self.spec.features)


def plan_windows(candles: pd.DataFrame, interval: str | Interval, spec: WindowSpec) -> WindowPlan:
    """Features, scaler, window starts and splits for typed candles, per ``spec.protocol``."""
    interval = Interval.parse(interval)
    values, times = feature_matrix(candles, spec.features, interval.ms if spec.drop_gaps else None)
    check_length(values.shape[0], spec)
    if spec.protocol is Protocol.SEED:
        plan = _plan_seed(values, times, spec)
    else:
        plan = _plan_honest(values, times, interval, spec)
    check_every_split_has_windows(plan)
    return plan


def check_every_split_has_windows(plan: WindowPlan) -> None:
    """``BadInputError`` naming stride and splits when a split would hold no window: the
    validation split (it chooses the epochs), and under ``honest`` train and test too. (``seed``
    keeps the tutorial's 80/20 rule even for a single window, which lands in validation.)"""
    spec, counts = plan.spec, plan.counts
    needed = ("validation",) if spec.protocol is Protocol.SEED else tuple(SPLIT_CODES)
    empty = [name for name in needed if counts.get(f"n_{name}", 0) == 0]
    if not empty:
        return
    have = ", ".join(f"{name} {counts.get(f'n_{name}', 0)}" for name in needed)
    gaps = f", {counts['dropped_gaps']} dropped for gaps" if counts.get("dropped_gaps") else ""
    raise BadInputError(
        f"stride {spec.stride} with splits {list(spec.splits)} leaves 0 {' and 0 '.join(empty)} "
        f"windows ({have}{gaps}) from {counts['n_rows']} candles of {spec.window_length} each; "
        "use a smaller stride, larger splits or more candles"
    )


def _plan_seed(values: np.ndarray, times: np.ndarray, spec: WindowSpec) -> WindowPlan:
    n = values.shape[0]
    scaler = Scaler.fit(values, ScalerKind.MINMAX)  # on every row, as the tutorial did
    starts = seed_window_starts(n, spec.past, spec.future, sliding=spec.stride == 1)
    n_train = int(spec.splits[0] * starts.size)
    split = np.ones(starts.size, dtype=np.int8)
    split[:n_train] = SPLIT_CODES["train"]
    arrays = WindowArrays(
        original=values,
        scaled=scaler.transform(values),
        times=times // 1000,
        starts=starts,
        split=split,
    )
    bounds = _bounds_from_windows(starts, split, times, spec.window_length)
    counts = {"n_rows": n, "n_windows": int(starts.size), "dropped_gaps": 0, "dropped_embargo": 0}
    counts |= {f"n_{k}": int(np.sum(split == c)) for k, c in SPLIT_CODES.items()}
    return WindowPlan(spec, arrays, scaler, "s", bounds, counts)


def _plan_honest(
    values: np.ndarray, times: np.ndarray, interval: Interval, spec: WindowSpec
) -> WindowPlan:
    n, m = values.shape[0], spec.window_length
    row_bounds = split_row_bounds(n, spec)
    train_lo, train_hi = row_bounds[0]
    if spec.scaler is ScalerKind.WINDOW:  # nothing to fit: each window scales itself
        scaler = Scaler.for_windows([f.value for f in spec.features])
    else:
        scaler = Scaler.fit(values[train_lo:train_hi], spec.scaler)
    bad_rows = np.isnan(values).any(axis=1)
    if spec.drop_gaps:
        clean = clean_windows(np.diff(times) != interval.ms, bad_rows, m)
    else:  # gaps allowed; rows without a value (log return at the start) still never used
        clean = clean_windows(np.zeros(max(0, n - 1), dtype=bool), bad_rows, m)
    candidates = np.arange(0, n - m + 1, spec.stride, dtype=np.int64)
    starts_parts, split_parts, dropped_gaps = [], [], 0
    in_some_split = np.zeros(candidates.size, dtype=bool)
    if spec.folds > 1:  # rows before a sliding fold's training and after its test are not its own
        in_fold = (candidates >= row_bounds[0][0]) & (candidates + m <= row_bounds[-1][1])
    else:
        in_fold = np.ones(candidates.size, dtype=bool)
    for code, (lo, hi) in enumerate(row_bounds):
        inside = (candidates >= lo) & (candidates + m <= hi)
        in_some_split |= inside
        keep = inside & clean[candidates]
        dropped_gaps += int(np.sum(inside & ~clean[candidates]))
        starts_parts.append(candidates[keep])
        split_parts.append(np.full(int(keep.sum()), code, dtype=np.int8))
    starts = np.concatenate(starts_parts)
    split = np.concatenate(split_parts)
    arrays = WindowArrays(
        original=values,
        scaled=scaler.transform(values).astype(np.float32),
        times=times,
        starts=starts,
        split=split,
    )
    bounds = {
        name: {
            "row_start": lo,
            "row_end": hi,
            "time_start_ms": int(times[lo]) if hi > lo else -1,
            "time_end_ms": int(times[hi - 1]) if hi > lo else -1,
        }
        for name, (lo, hi) in zip(SPLIT_CODES, row_bounds, strict=True)
    }
    for name, code in SPLIT_CODES.items():
        bounds[name]["n_windows"] = int(np.sum(split == code))
    counts = {
        "n_rows": n,
        "n_windows": int(starts.size),
        "dropped_gaps": dropped_gaps,
        "dropped_embargo": int(np.sum(~in_some_split & in_fold)),
        "n_gaps": int(np.sum(np.diff(times) != interval.ms)),
    }
    if spec.folds > 1:
        counts |= {"fold": spec.fold, "folds": spec.folds, "outside_fold": int(np.sum(~in_fold))}
    counts |= {f"n_{k}": int(np.sum(split == c)) for k, c in SPLIT_CODES.items()}
    return WindowPlan(spec, arrays, scaler, "ms", bounds, counts)


def _bounds_from_windows(
    starts: np.ndarray, split: np.ndarray, times: np.ndarray, length: int
) -> dict[str, dict[str, int]]:
    """Row/time span covered by each split's windows."""
    out: dict[str, dict[str, int]] = {}
    for name, code in SPLIT_CODES.items():
        s = starts[split == code]
        if s.size:
            lo, hi = int(s[0]), int(s[-1]) + length
            out[name] = {
                "row_start": lo,
                "row_end": hi,
                "time_start_ms": int(times[lo]),
                "time_end_ms": int(times[hi - 1]),
                "n_windows": int(s.size),
            }
        else:
            out[name] = {
                "row_start": -1,
                "row_end": -1,
                "time_start_ms": -1,
                "time_end_ms": -1,
                "n_windows": 0,
            }
    return out
