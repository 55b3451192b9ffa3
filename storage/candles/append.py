"""Appending candles: keep the closed ones, merge each month into its partition, write atomically.

* **Open candle.** With ``server_now_ms`` given, a candle is kept only when it has closed:
  ``open_time + interval <= server_now_ms`` (equivalently ``close_time < server_now_ms``).
  ``server_now_ms=None`` means the caller vouches that every row is closed.
* **Duplicates.** Unique on ``open_time``. An incoming row whose ``open_time`` is stored is ignored
  (not counted as added). Closed Poloniex candles are final, so the stored row wins; if the
  incoming one differs, it is counted in ``AppendResult.conflicts`` and logged as a warning.
* **Writes.** Only the months that receive new rows are rewritten, each to a temporary file
  (``.part.parquet.*.tmp``) renamed into place, in chronological order: a crash between months
  keeps every earlier month committed. Stale temporary files are removed on the next append.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from storage.atomic import atomic_path
from storage.candles import parquet
from storage.candles.partitions import (
    PART_NAME,
    Month,
    month_keys,
    month_label,
    month_of_key,
    month_path,
)
from storage.schema import CANDLE_COLUMNS, Interval, from_epoch_ms, to_epoch_ms, to_ms

log = logging.getLogger(__name__)

_VALUE_COLUMNS = tuple(c for c in CANDLE_COLUMNS if c != "open_time")


@dataclass(frozen=True)
class AppendResult:
    """What one append changed."""

    added: int
    first_new: pd.Timestamp | None
    last_new: pd.Timestamp | None
    months_written: list[str] = field(default_factory=list)  # "YYYY-MM", in write order
    conflicts: int = 0  # incoming closed candles that differ from the stored ones (stored kept)
    dropped_open: int = 0  # incoming candles not yet closed at server_now_ms (not stored)


def closed_candles(
    df: pd.DataFrame, iv: Interval, server_now_ms: object | None
) -> tuple[pd.DataFrame, int]:
    """The rows (m <= n) of a validated frame (n, 9) closed at ``server_now_ms``, and n - m."""
    if server_now_ms is None:
        return df, 0
    now = to_epoch_ms(server_now_ms, "server_now_ms")
    closed = to_ms(df["open_time"]) + iv.ms <= now
    return df.loc[closed].reset_index(drop=True), int((~closed).sum())


def write_months(
    series: Path, df: pd.DataFrame, symbol: str, iv: Interval, dropped_open: int
) -> AppendResult:
    """Merge a validated, closed, sorted frame (n, 9) into its months, oldest month first.

    The caller holds the series lock.
    """
    if df.empty:
        return AppendResult(0, None, None, [], 0, dropped_open)
    keys = month_keys(to_ms(df["open_time"]))
    added = conflicts = 0
    first_new: int | None = None
    last_new: int | None = None
    written: list[str] = []
    remove_stale_temp_files(series)
    # keys are sorted because df is: months are visited (and committed) in time order
    bounds = np.flatnonzero(np.diff(keys)) + 1
    for lo, hi in zip(np.r_[0, bounds], np.r_[bounds, len(keys)], strict=True):
        month = month_of_key(int(keys[lo]))
        new, n_conflicts = merge_month(series, month, df.iloc[lo:hi], symbol, iv)
        conflicts += n_conflicts
        if new is None:
            continue
        written.append(month_label(month))
        added += new[0]
        first_new = new[1] if first_new is None else min(first_new, new[1])
        last_new = new[2] if last_new is None else max(last_new, new[2])
    return AppendResult(
        added,
        None if first_new is None else from_epoch_ms(first_new),
        None if last_new is None else from_epoch_ms(last_new),
        written,
        conflicts,
        dropped_open,
    )


def merge_month(
    series: Path, month: Month, incoming: pd.DataFrame, symbol: str, iv: Interval
) -> tuple[tuple[int, int, int] | None, int]:
    """Merge one month's rows (m, 9) into its partition: ((added, first, last), conflicts)."""
    path = month_path(series, month)
    inc_ms = to_ms(incoming["open_time"])
    stored = parquet.read_partition(path) if path.is_file() else None
    conflicts = 0
    if stored is not None and stored.num_rows:
        stored_ms = stored.column("open_time").cast(pa.int64()).to_numpy()
        if len(stored_ms) > 1 and not (np.diff(stored_ms) > 0).all():
            raise parquet.corrupt(path, "candle partition is not sorted and unique on open_time")
        dup = is_stored(inc_ms, stored_ms)
        if dup.any():
            conflicts = count_conflicts(stored, stored_ms, incoming.loc[dup], inc_ms[dup])
            if conflicts:
                log.warning(
                    "%s %s %s: %d incoming candle(s) differ from stored ones; kept the stored",
                    symbol,
                    iv.value,
                    month_label(month),
                    conflicts,
                )
        new = incoming.loc[~dup]
        new_ms = inc_ms[~dup]
    else:
        new, new_ms = incoming, inc_ms
    if new.empty:
        return None, conflicts
    new_table = parquet.frame_to_table(new.reset_index(drop=True))
    if stored is None or stored.num_rows == 0:
        merged = new_table
    else:
        schema = parquet.ARROW_SCHEMA
        merged = pa.concat_tables([stored.cast(schema), new_table.cast(schema)])
        if new_ms[0] <= stored_ms[-1]:  # not a pure tail append: sort
            merged = merged.sort_by("open_time")
    merged = merged.replace_schema_metadata(parquet.FILE_METADATA)
    with atomic_path(path) as tmp:
        parquet.write_table(merged, tmp)
    return (len(new), int(new_ms[0]), int(new_ms[-1])), conflicts


def is_stored(times: np.ndarray, stored: np.ndarray) -> np.ndarray:
    """Mask (m,) of ``times`` (m,) present in the ascending, unique ``stored`` (n,): O(m log n)."""
    if len(stored) == 0 or len(times) == 0:
        return np.zeros(len(times), dtype=bool)
    pos = np.minimum(np.searchsorted(stored, times), len(stored) - 1)
    return stored[pos] == times


def count_conflicts(
    stored: pa.Table, stored_ms: np.ndarray, dup_rows: pd.DataFrame, dup_ms: np.ndarray
) -> int:
    """Count incoming rows (k, 9) whose values differ from the stored row of that time."""
    idx = np.searchsorted(stored_ms, dup_ms)
    old = stored.take(pa.array(idx)).to_pandas()
    differ = np.zeros(len(dup_rows), dtype=bool)
    for col in _VALUE_COLUMNS:
        differ |= dup_rows[col].to_numpy() != old[col].to_numpy()
    return int(differ.sum())


def remove_stale_temp_files(series: Path) -> None:
    """Delete temporary files left by a crashed writer (caller holds the series lock)."""
    for tmp in series.glob(f"year=*/month=*/.{PART_NAME}.*.tmp"):
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
            log.info("removed stale temporary file %s", tmp)
