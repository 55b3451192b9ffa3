"""Cutting candles into (past -> future) training windows: the tutorial's ``seed`` protocol and
the ``honest`` default, plus the readers models train from.

Pure functions over arrays and DataFrames; the HDF5 lives in :mod:`storage.windows`.

* ``seed``: the tutorial's ``PastSampler`` bit for bit: windows over the whole series (gaps
  ignored), MinMax fit on every row, float64, times in Poloniex ``date`` seconds with shape
  ``(n, N, 1)``, first ``int(0.8 * n)`` windows train and the rest validation.
* ``honest``: stride 1 by default; chronological train/validation/test row ranges (70/15/15);
  a window belongs to a split only when all its N+K candles lie inside that split's rows, so the
  N+K-1 windows straddling each boundary are dropped (the embargo) and no window of a later
  split overlaps an earlier split's span; the scaler is fit on the training rows only; windows
  that span a gap in the candle series are dropped and counted; float32 windows, ms times.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from prefect import task

from storage.candles import CandleStore
from storage.layout import DataLayout
from storage.schema import Interval, parse_choice, to_ms
from storage.version import DATA_FORMAT_VERSION
from storage.windows import (
    SPLIT_CODES,
    Layout,
    WindowArrays,
    WindowFile,
    dataset_id,
    window_path,
    write_window_file,
)
from tasks.scaling import Scaler, ScalerKind


class Protocol(StrEnum):
    """How windows are cut, scaled and split."""

    SEED = "seed"
    HONEST = "honest"

    @classmethod
    def parse(cls, value: str | Protocol) -> Protocol:
        """Parse a protocol name, raising a ``ValueError`` that lists the valid ones."""
        return parse_choice(cls, value, "protocol", fold="lower")


class Feature(StrEnum):
    """Columns a window can carry (candle schema names, plus derived log returns)."""

    OPEN = "open"
    HIGH = "high"
    LOW = "low"
    CLOSE = "close"
    VOLUME_BASE = "volume_base"
    VOLUME_QUOTE = "volume_quote"
    TRADE_COUNT = "trade_count"
    LOG_RETURN = "log_return"  # log(close_t / close_{t-1}); needs the previous candle


DEFAULT_SPLITS: dict[Protocol, tuple[float, ...]] = {
    Protocol.SEED: (0.8, 0.2),
    Protocol.HONEST: (0.7, 0.15, 0.15),
}


def parse_features(features: list[str] | tuple[str, ...] | str) -> tuple[Feature, ...]:
    """Feature names (list or comma text) -> unique ``Feature`` tuple, else ``ValueError``."""
    names = features.split(",") if isinstance(features, str) else list(features)
    names = [str(n).strip().lower() for n in names if str(n).strip()]
    if not names:
        raise ValueError("features: at least one feature is needed, e.g. close")
    out: list[Feature] = []
    for name in names:
        try:
            feat = Feature(name)
        except ValueError:
            valid = ", ".join(f.value for f in Feature)
            raise ValueError(
                f"features: unknown feature {name!r}; valid features: {valid}"
            ) from None
        if feat in out:
            raise ValueError(f"features: {name!r} is listed twice")
        out.append(feat)
    return tuple(out)


@dataclass(frozen=True)
class WindowSpec:
    """What a window file holds; validated on construction (``ValueError`` names the parameter)."""

    protocol: Protocol = Protocol.HONEST
    past: int = 256
    future: int = 16
    stride: int | None = None  # None: seed non-sliding (past+future), honest 1
    features: tuple[Feature, ...] = (Feature.CLOSE,)
    scaler: ScalerKind = ScalerKind.MINMAX
    splits: tuple[float, ...] | None = None  # None: the protocol's default
    layout: Layout = Layout.FULL
    drop_gaps: bool | None = None  # None: honest drops windows that span gaps, seed keeps them

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "protocol", Protocol.parse(self.protocol))
        for name in ("past", "future"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
            set_(self, name, int(value))
        set_(self, "features", parse_features(self.features))
        set_(self, "scaler", ScalerKind.parse(self.scaler))
        set_(self, "layout", Layout(self.layout))
        set_(self, "stride", self._check_stride(self.stride))
        set_(self, "splits", self._check_splits(self.splits))
        if self.drop_gaps is None:
            set_(self, "drop_gaps", self.protocol is Protocol.HONEST)
        elif self.protocol is Protocol.SEED and self.drop_gaps:
            raise ValueError("drop_gaps: the seed protocol ignores gaps, as the tutorial did")
        set_(self, "drop_gaps", bool(self.drop_gaps))
        if self.protocol is Protocol.SEED and self.scaler is not ScalerKind.MINMAX:
            raise ValueError("scaler: the seed protocol reproduces the tutorial's MinMax scaler")

    @property
    def window_length(self) -> int:
        """Candles per window, past + future."""
        return self.past + self.future

    def _check_stride(self, stride: int | None) -> int:
        m = self.past + self.future
        if stride is None:
            return m if self.protocol is Protocol.SEED else 1
        if isinstance(stride, bool) or not isinstance(stride, int | np.integer) or stride <= 0:
            raise ValueError(f"stride must be a positive integer, got {stride!r}")
        if self.protocol is Protocol.SEED and stride not in (1, m):
            raise ValueError(
                f"stride: the seed protocol has the tutorial's two modes only, 1 (sliding) or "
                f"past+future={m} (non-overlapping), got {stride}"
            )
        return int(stride)

    def _check_splits(self, splits: Any) -> tuple[float, ...]:
        default = DEFAULT_SPLITS[self.protocol]
        if splits is None:
            return default
        try:
            values = tuple(float(s) for s in splits)
        except (TypeError, ValueError):
            raise ValueError(f"splits must be a list of fractions, got {splits!r}") from None
        if len(values) != len(default):
            names = "/".join(list(SPLIT_CODES)[: len(default)])
            raise ValueError(
                f"splits: the {self.protocol.value} protocol takes {len(default)} fractions "
                f"({names}), got {len(values)}"
            )
        if any(not math.isfinite(v) or v <= 0 for v in values) or sum(values) > 1 + 1e-9:
            raise ValueError(f"splits: fractions must be > 0 and sum to at most 1, got {values}")
        if self.protocol is Protocol.SEED and abs(sum(values) - 1) > 1e-9:
            raise ValueError(f"splits: seed train/validation fractions must sum to 1, got {values}")
        return values

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able description (goes into the dataset id and the file's attributes)."""
        d = asdict(self)
        d["protocol"] = self.protocol.value
        d["features"] = [f.value for f in self.features]
        d["scaler"] = self.scaler.value
        d["layout"] = self.layout.value
        d["splits"] = list(self.splits)
        return d


# ----------------------------------------------------------------------------- pure windowing


def make_windows(
    values: np.ndarray, past: int, future: int, stride: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Zero-copy views (n_windows, past, F) and (n_windows, future, F) over values (n, F)."""
    values = np.asarray(values)
    if values.ndim == 1:
        values = values[:, None]
    m = past + future
    if past <= 0 or future <= 0 or stride <= 0:
        raise ValueError("past, future and stride must be positive")
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
        raise ValueError("candles must be sorted by open_time without duplicates")
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


def target_index(features: tuple[Feature, ...]) -> int:
    """Index of the forecast target: ``close`` if present, else ``log_return``, else 0."""
    for target in (Feature.CLOSE, Feature.LOG_RETURN):
        if target in features:
            return features.index(target)
    return 0


def check_length(n_rows: int, spec: WindowSpec) -> None:
    """``ValueError`` unless the series holds at least one window (each honest split too)."""
    m = spec.window_length
    if n_rows < m:
        raise ValueError(
            f"past+future={m} is longer than the data ({n_rows} candles); lower past or future"
        )
    if spec.protocol is Protocol.HONEST:
        for name, (lo, hi) in zip(
            SPLIT_CODES, honest_row_bounds(n_rows, spec.splits), strict=False
        ):
            if hi - lo < m:
                raise ValueError(
                    f"splits: the {name} split gets {hi - lo} of {n_rows} candles, fewer than "
                    f"past+future={m}; use larger fractions, a shorter window or more data"
                )


def plan_windows(candles: pd.DataFrame, interval: str | Interval, spec: WindowSpec) -> WindowPlan:
    """Features, scaler, window starts and splits for typed candles, per ``spec.protocol``."""
    interval = Interval.parse(interval)
    values, times = feature_matrix(candles, spec.features, interval.ms if spec.drop_gaps else None)
    check_length(values.shape[0], spec)
    if spec.protocol is Protocol.SEED:
        return _plan_seed(values, times, spec)
    return _plan_honest(values, times, interval, spec)


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
    row_bounds = honest_row_bounds(n, spec.splits)
    train_lo, train_hi = row_bounds[0]
    scaler = Scaler.fit(values[train_lo:train_hi], spec.scaler)
    bad_rows = np.isnan(values).any(axis=1)
    if spec.drop_gaps:
        clean = clean_windows(np.diff(times) != interval.ms, bad_rows, m)
    else:  # gaps allowed; rows without a value (log return at the start) still never used
        clean = clean_windows(np.zeros(max(0, n - 1), dtype=bool), bad_rows, m)
    candidates = np.arange(0, n - m + 1, spec.stride, dtype=np.int64)
    starts_parts, split_parts, dropped_gaps = [], [], 0
    in_some_split = np.zeros(candidates.size, dtype=bool)
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
        "dropped_embargo": int(np.sum(~in_some_split)),
        "n_gaps": int(np.sum(np.diff(times) != interval.ms)),
    }
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


# ----------------------------------------------------------------------------- readers


class WindowDataset(WindowFile):
    """A window file opened for training or reporting: arrays per split, attributes, scaler."""

    @property
    def scaler(self) -> Scaler:
        """The scaler the windows were scaled with (``inverse_transform`` gives prices)."""
        return Scaler.from_json(_json_text(self.attrs["scaler"]))

    @property
    def features(self) -> list[str]:
        """Feature column names, in the order of the last axis."""
        return list(self.attrs["features"])

    @property
    def target_feature(self) -> int:
        """Index of the forecast target (``close``) on the feature axis."""
        return int(self.attrs["target_feature"])


def _json_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def open_dataset(path: str) -> WindowDataset:
    """Open a window file (either layout) for reading."""
    return WindowDataset(path)


_SEQUENCE_CLASS: type | None = None


def _window_sequence_class() -> type:
    """Build ``WindowSequence`` (a ``keras.utils.PyDataset``) on first use."""
    global _SEQUENCE_CLASS
    if _SEQUENCE_CLASS is not None:
        return _SEQUENCE_CLASS
    import keras

    class WindowSequence(keras.utils.PyDataset):
        """Batches (X (b, N, F), Y (b, K, F) or (b, K)) of one split, read from the HDF5.

        Splits smaller than ``in_memory_bytes`` are loaded once; larger ones are read batch by
        batch (contiguous slices, so each read touches a few chunks). ``shuffle`` permutes the
        order of batches each epoch (windows inside a batch stay contiguous in time).
        ``target_only`` gives Y as (b, K), the target feature alone (the tutorial's labels).
        """

        def __init__(
            self,
            path: str,
            split: str = "train",
            batch_size: int = 32,
            shuffle: bool = False,
            seed: int = 0,
            target_only: bool = False,
            in_memory_bytes: int = 64 << 20,
            **kwargs: Any,
        ) -> None:
            super().__init__(**kwargs)
            if batch_size <= 0:
                raise ValueError(f"batch_size must be positive, got {batch_size}")
            self.dataset = open_dataset(path)
            self.split_name = split
            self.lo, self.hi = self.dataset.split_range(split)
            self.batch_size = int(batch_size)
            self.shuffle = shuffle
            self.target = self.dataset.target_feature if target_only else None
            self._rng = np.random.default_rng(seed)
            self._order = np.arange(len(self))
            if shuffle:
                self._rng.shuffle(self._order)
            n = self.hi - self.lo
            row_bytes = (self.dataset.past + self.dataset.future) * len(self.dataset.features) * 8
            self._cache = (
                self.dataset.split_arrays(split) if n * row_bytes <= in_memory_bytes else None
            )

        def __len__(self) -> int:
            return math.ceil((self.hi - self.lo) / self.batch_size)

        @property
        def num_batches(self) -> int:
            return len(self)

        def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
            if not 0 <= index < len(self):
                raise IndexError(f"batch {index} out of range 0..{len(self) - 1}")
            b = int(self._order[index])
            lo = b * self.batch_size
            hi = min(self.hi - self.lo, lo + self.batch_size)
            if self._cache is not None:
                x, y = self._cache[0][lo:hi], self._cache[1][lo:hi]
            else:
                x = self.dataset.read("inputs", self.lo + lo, self.lo + hi)
                y = self.dataset.read("outputs", self.lo + lo, self.lo + hi)
            if self.target is not None:
                y = y[:, :, self.target]
            return x, y

        def on_epoch_end(self) -> None:
            if self.shuffle:
                self._rng.shuffle(self._order)

    WindowSequence.__module__ = __name__
    WindowSequence.__qualname__ = "WindowSequence"
    _SEQUENCE_CLASS = WindowSequence
    return WindowSequence


def __getattr__(name: str) -> Any:
    # WindowSequence subclasses keras.utils.PyDataset; it is built on first access so importing
    # this module (prepare, the CLI) does not import Keras/TensorFlow.
    if name == "WindowSequence":
        return _window_sequence_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ----------------------------------------------------------------------------- writing + tasks


def frame_fingerprint(candles: pd.DataFrame) -> str:
    """Content hash (32 hex) of typed candles, for window sets cut outside the candle store."""
    h = hashlib.sha256()
    for col in candles.columns:
        h.update(col.encode())
        values = candles[col]
        arr = to_ms(values) if isinstance(values.dtype, pd.DatetimeTZDtype) else values.to_numpy()
        h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()[:32]


def window_attrs(
    plan: WindowPlan, symbol: str, interval: str, candle_fingerprint: str, ds_id: str
) -> dict[str, Any]:
    """The attributes a window file carries (JSON values where structured)."""
    spec = plan.spec
    return {
        "past": spec.past,
        "future": spec.future,
        "stride": spec.stride,
        "features": [f.value for f in spec.features],
        "protocol": spec.protocol.value,
        "split_bounds": plan.split_bounds,
        "scaler": json.loads(plan.scaler.to_json()),
        "candle_fingerprint": candle_fingerprint,
        "code_version": DATA_FORMAT_VERSION,
        "symbol": symbol,
        "interval": str(interval),
        "dataset_id": ds_id,
        "target_feature": plan.target_feature,
        "time_unit": plan.time_unit,
        "counts": plan.counts,
        "spec": spec.to_dict(),
    }


def window_dataset_id(symbol: str, interval: str, spec: WindowSpec, candle_fingerprint: str) -> str:
    """Dataset id of (candles, symbol/interval + window spec, code version)."""
    return dataset_id(
        candle_fingerprint, {"symbol": symbol, "interval": str(interval), **spec.to_dict()}
    )


def summarize(path: Path, created: bool) -> dict[str, Any]:
    """Small summary of a window file: path, id, counts per split (never arrays)."""
    ds = WindowFile(path)
    try:
        counts = {name: ds.split_size(name) for name in SPLIT_CODES}
        extra = ds.attrs.get("counts", {})
        return {
            "path": str(path),
            "dataset_id": ds.attrs.get("dataset_id", path.stem),
            "created": created,
            "protocol": ds.attrs.get("protocol"),
            "n_windows": ds.n_windows,
            "windows": counts,
            "dropped_gaps": int(extra.get("dropped_gaps", 0)),
            "dropped_embargo": int(extra.get("dropped_embargo", 0)),
        }
    finally:
        ds.close()


def write_windows(
    candles: pd.DataFrame,
    symbol: str,
    interval: str | Interval,
    spec: WindowSpec,
    windows_root: str | os.PathLike[str],
    candle_fingerprint: str | None = None,
    compress: bool = True,
) -> dict[str, Any]:
    """Cut ``candles`` per ``spec`` into ``windows_root/<id>.h5``; an existing file is kept.

    ``compress=False`` stores the window datasets uncompressed (benchmarks; much larger files).
    """
    interval = Interval.parse(interval)
    fingerprint = candle_fingerprint or frame_fingerprint(candles)
    ds_id = window_dataset_id(symbol, interval.value, spec, fingerprint)
    path = window_path(windows_root, ds_id)
    if path.is_file():
        return summarize(path, created=False)
    plan = plan_windows(candles, interval, spec)
    write_window_file(
        path,
        plan.arrays,
        spec.past,
        spec.future,
        window_attrs(plan, symbol, interval.value, fingerprint, ds_id),
        layout=spec.layout,
        tutorial_time_shape=spec.protocol is Protocol.SEED,
        compress=compress,
    )
    return summarize(path, created=True)


@task(name="candle-fingerprint")
def candle_fingerprint_task(symbol: str, interval: str, data_dir: str) -> str:
    """Cheap fingerprint of the stored candles (file names, sizes, footers)."""
    return CandleStore(DataLayout.at(data_dir).candles).fingerprint(symbol, interval)


def _windows_cache_key(context: Any, parameters: dict[str, Any]) -> str:
    """Cache key: the dataset id plus where the file lives."""
    where = hashlib.sha256(str(parameters["data_dir"]).encode()).hexdigest()[:12]
    return f"cryptoflow-windows-{parameters['ds_id']}-{where}"


@task(
    name="cut-windows",
    cache_key_fn=_windows_cache_key,
    persist_result=True,
    result_serializer="json",
)
def cut_windows_task(
    symbol: str, interval: str, spec: dict[str, Any], ds_id: str, fingerprint: str, data_dir: str
) -> dict[str, Any]:
    """Load the stored candles and write ``windows/<ds_id>.h5`` unless it exists; a summary."""
    layout = DataLayout.at(data_dir)
    window_spec = WindowSpec(**spec)
    path = window_path(layout.windows, ds_id)
    if path.is_file():
        return summarize(path, created=False)
    candles = CandleStore(layout.candles).load(symbol, interval)
    if candles.empty:
        raise ValueError(
            f"no {symbol} {interval} candles stored under {layout.candles}; run cryptoflow ingest"
        )
    summary = write_windows(candles, symbol, interval, window_spec, layout.windows, fingerprint)
    if summary["dataset_id"] != ds_id:
        raise RuntimeError(f"dataset id changed while cutting windows ({ds_id})")
    return summary
