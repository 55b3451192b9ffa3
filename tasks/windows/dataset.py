"""Cutting candles into a window file through the store, and the Prefect tasks that do it."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from prefect import get_run_logger, task

from storage.candles import CandleStore
from storage.errors import BadInputError
from storage.layout import DataLayout
from storage.schema import Interval, to_ms
from storage.version import DATA_FORMAT_VERSION
from storage.windows.format import SPLIT_CODES, dataset_id, window_path
from storage.windows.reader import WindowFile
from storage.windows.store import WindowStore
from storage.windows.writer import write_window_file
from tasks.windows.plan import WindowPlan, plan_windows
from tasks.windows.spec import Protocol, WindowSpec


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
    with WindowFile(path) as ds:
        extra = ds.attrs.get("counts", {})
        return {
            "path": str(path),
            "dataset_id": ds.attrs.get("dataset_id", path.stem),
            "created": created,
            "protocol": ds.attrs.get("protocol"),
            "n_windows": ds.n_windows,
            "windows": {name: ds.split_size(name) for name in SPLIT_CODES},
            "dropped_gaps": int(extra.get("dropped_gaps", 0)),
            "dropped_embargo": int(extra.get("dropped_embargo", 0)),
        }


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


@task(name="check-windows")
def check_windows_task(data_dir: str) -> dict[str, Any]:
    """Tidy the window store before cutting: ``{"intact": [ids], "moved": {id: moved_to}}``.

    Temporaries of writers that are gone are removed (a live writer's never); a window file
    that cannot be opened is moved aside to ``<id>.h5.corrupt-<time>`` so that it is rebuilt.
    """
    repairs = WindowStore(DataLayout.at(data_dir).windows).tidy()
    logger = get_run_logger()
    if repairs.removed:
        logger.warning(
            "removed %d temporary file(s) left by crashed writers: %s",
            len(repairs.removed), ", ".join(repairs.removed),
        )
    for moved in repairs.moved:
        logger.warning(
            "window file %s %s: moved aside to %s; prepare writes it again",
            moved["path"], moved["problem"], Path(moved["moved_to"]).name,
        )
    for unchecked in repairs.unchecked:
        logger.warning("window file %s could not be checked: %s", unchecked["path"],
                       unchecked["problem"])
    return {
        "intact": repairs.intact,
        "moved": {Path(m["path"]).stem: m["moved_to"] for m in repairs.moved},
    }


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
        raise BadInputError(
            f"no {symbol} {interval} candles stored under {layout.candles}; run cryptoflow ingest"
        )
    summary = write_windows(candles, symbol, interval, window_spec, layout.windows, fingerprint)
    if summary["dataset_id"] != ds_id:
        raise RuntimeError(f"dataset id changed while cutting windows ({ds_id})")
    return summary
