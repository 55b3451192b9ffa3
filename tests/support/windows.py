"""Support: real window files for the zoo and training tests, cut from recorded 5-min candles.

``write_real_windows`` goes through the real windowing code (``plan_windows`` and
``write_window_file``) so the tests train on exactly what ``prepare`` writes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from storage.recorded import load_recorded
from storage.version import DATA_FORMAT_VERSION
from tests.support.paths import shared_file
from tests.support.realdata import POLONIEX_5M


def real_candles(rows: int | None = None) -> pd.DataFrame:
    """The recorded USDT_BTC 5-minute candles in the candle schema (skips when absent)."""
    candles = load_recorded(shared_file(POLONIEX_5M))
    return candles if rows is None else candles.iloc[:rows]


def write_real_windows(
    path: Path,
    past: int = 64,
    future: int = 4,
    stride: int = 16,
    rows: int | None = 3000,
    features: tuple[str, ...] = ("close",),
    protocol: str = "honest",
    scaler: str = "minmax",
) -> Path:
    """Cut real candles into a window file at ``path`` (returns it)."""
    from storage.windows.writer import write_window_file
    from tasks.windows.plan import plan_windows
    from tasks.windows.spec import WindowSpec

    spec = WindowSpec(protocol=protocol, past=past, future=future, stride=stride,
                      features=features, scaler=scaler)
    plan = plan_windows(real_candles(rows), "MINUTE_5", spec)
    attrs = {
        "past": past,
        "future": future,
        "stride": spec.stride,
        "features": json.dumps([str(f) for f in spec.features]),
        "protocol": str(spec.protocol),
        "split_bounds": json.dumps(plan.split_bounds),
        "scaler": plan.scaler.to_json(),
        "candle_fingerprint": "test",
        "code_version": DATA_FORMAT_VERSION,
        "symbol": "BTC_USDT",
        "interval": "MINUTE_5",
        "dataset_id": path.stem,
        "target_feature": plan.target_feature,
        "time_unit": plan.time_unit,
    }
    return write_window_file(path, plan.arrays, past, future, attrs)
