"""Reading a series: load a time range, all open times, the oldest and the newest open time."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from storage.candles import parquet
from storage.candles.partitions import committed_months, month_key, month_keys
from storage.errors import BadInputError, CorruptStoreError
from storage.schema import cast_candles, empty_candles, from_epoch_ms, to_epoch_ms


def load_series(
    series: Path, start: object | None = None, end: object | None = None
) -> pd.DataFrame:
    """Candles (n, 9) with ``start <= open_time <= end``, sorted, typed; empty typed if none.

    Reads only the months the range touches; ``start``/``end`` as for :func:`to_epoch_ms`.
    """
    start_ms = None if start is None else to_epoch_ms(start, "start")
    end_ms = None if end is None else to_epoch_ms(end, "end")
    if start_ms is not None and end_ms is not None and start_ms > end_ms:
        raise BadInputError(f"start {start!r} is after end {end!r}")
    lo_key = None if start_ms is None else int(month_keys(np.array([start_ms]))[0])
    hi_key = None if end_ms is None else int(month_keys(np.array([end_ms]))[0])
    tables = []
    for month, path in committed_months(series).items():
        key = month_key(month)
        if (lo_key is not None and key < lo_key) or (hi_key is not None and key > hi_key):
            continue
        tables.append(parquet.read_partition(path).cast(parquet.ARROW_SCHEMA))
    if not tables:
        return empty_candles()
    table = pa.concat_tables(tables)
    times = table.column("open_time").cast(pa.int64()).to_numpy()
    if len(times) > 1 and not (np.diff(times) > 0).all():
        raise CorruptStoreError(series, "candle store is not sorted and unique on open_time")
    if start_ms is not None or end_ms is not None:
        lo = 0 if start_ms is None else int(np.searchsorted(times, start_ms, side="left"))
        hi = len(times) if end_ms is None else int(np.searchsorted(times, end_ms, side="right"))
        table = table.slice(lo, max(0, hi - lo))
    return cast_candles(table.to_pandas())


def open_times(series: Path) -> np.ndarray:
    """All stored open times (n,) int64 ms, ascending."""
    chunks = [parquet.read_open_times(p).to_numpy() for p in committed_months(series).values()]
    return np.concatenate(chunks) if chunks else np.empty(0, dtype=np.int64)


def first_open_time(series: Path) -> pd.Timestamp | None:
    """Open time of the oldest stored candle (reads the oldest partition's open times only)."""
    for path in committed_months(series).values():
        times = parquet.read_open_times(path).to_numpy()
        if len(times):
            return from_epoch_ms(int(times.min()))
    return None


def last_open_time(series: Path) -> pd.Timestamp | None:
    """Open time of the newest stored candle, from the newest partition's metadata only."""
    for path in reversed(list(committed_months(series).values())):
        newest = parquet.max_open_time_ms(path)
        if newest is not None:
            return from_epoch_ms(newest)
    return None
