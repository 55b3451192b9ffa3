"""The candle store: Hive-partitioned Parquet, one file per (series, month), appended atomically.

Layout (``root`` is ``DataLayout.candles``)::

    root/exchange=poloniex/symbol=BTC_USDT/interval=MINUTE_5/year=2017/month=07/part.parquet
    root/exchange=poloniex/symbol=BTC_USDT/interval=MINUTE_5/.lock

Rules this module keeps (see docs/INTERFACES.md):

* **Close time.** A candle covers ``[open_time, open_time + interval)``; its ``close_time`` is the
  last millisecond inside it, ``open_time + interval - 1 ms`` (Poloniex's ``closeTime``). Incoming
  frames must follow this exactly.
* **Open candle.** With ``server_now_ms`` given, a candle is kept only when it has closed:
  ``open_time + interval <= server_now_ms`` (equivalently ``close_time < server_now_ms``). A candle
  whose close time has passed is kept; one whose last millisecond is ``server_now_ms`` or later is
  dropped. ``server_now_ms=None`` means the caller vouches that every row is closed.
* **Duplicates.** Unique on ``open_time``. An incoming row whose ``open_time`` is stored is ignored
  (not counted as added). Closed Poloniex candles are final, so the stored row wins; if the
  incoming one differs, it is counted in ``AppendResult.conflicts`` and logged as a warning.
* **Writes.** Only the months that receive new rows are rewritten, each to a temporary file
  (``.part.parquet.*.tmp``) renamed into place, in chronological order: a crash between months
  keeps every earlier month committed. Temporary files are never read and stale ones are removed
  on the next append. Writers take an exclusive per-series ``flock`` (:meth:`CandleStore.lock`).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from storage.atomic import atomic_path
from storage.schema import (
    CANDLE_COLUMNS,
    CANDLE_DTYPES,
    PRICE_COLUMNS,
    Interval,
    cast_candles,
    empty_candles,
    to_ms,
    validate_symbol,
)
from storage.version import DATA_FORMAT_VERSION

log = logging.getLogger(__name__)

PART_NAME = "part.parquet"
LOCK_NAME = ".lock"
COMPRESSION = "zstd"
# Plain encodings chosen for speed and size (a 44,640-row month: ~9 ms to write, ~1 MB):
# byte-stream-split floats and delta-packed integers, no dictionaries (prices rarely repeat).
_COLUMN_ENCODING = {
    "open": "BYTE_STREAM_SPLIT",
    "high": "BYTE_STREAM_SPLIT",
    "low": "BYTE_STREAM_SPLIT",
    "close": "BYTE_STREAM_SPLIT",
    "volume_base": "BYTE_STREAM_SPLIT",
    "volume_quote": "BYTE_STREAM_SPLIT",
    "open_time": "DELTA_BINARY_PACKED",
    "trade_count": "DELTA_BINARY_PACKED",
    "close_time": "DELTA_BINARY_PACKED",
}
DEFAULT_LOCK_TIMEOUT_S = 10.0

_ARROW_TYPES: dict[str, pa.DataType] = {
    "datetime64[ms, UTC]": pa.timestamp("ms", tz="UTC"),
    "float64": pa.float64(),
    "int64": pa.int64(),
}
#: The Parquet schema of every partition file (exact, including ``timestamp[ms, tz=UTC]``).
ARROW_SCHEMA: pa.Schema = pa.schema(
    [pa.field(c, _ARROW_TYPES[d], nullable=False) for c, d in CANDLE_DTYPES.items()]
)
_FILE_METADATA = {b"cryptoflow.candles.format": DATA_FORMAT_VERSION.encode()}
_EXCHANGE_RE = re.compile(r"^[a-z0-9]{1,32}$")
_YEAR_RE = re.compile(r"^year=(\d{4})$")
_MONTH_RE = re.compile(r"^month=(\d{2})$")
_VALUE_COLUMNS = tuple(c for c in CANDLE_COLUMNS if c != "open_time")

Month = tuple[int, int]  # (year, month)
_EARLIEST_MS = 946_684_800_000  # 2000-01-01: earlier open times are a unit mistake
_LATEST_MS = 4_102_444_800_000  # 2100-01-01


class StoreLockedError(TimeoutError):
    """Another writer holds the series lock."""


@dataclass(frozen=True)
class AppendResult:
    """What one append changed."""

    added: int
    first_new: pd.Timestamp | None
    last_new: pd.Timestamp | None
    months_written: list[str] = field(default_factory=list)  # "YYYY-MM", in write order
    conflicts: int = 0  # incoming closed candles that differ from the stored ones (stored kept)
    dropped_open: int = 0  # incoming candles not yet closed at server_now_ms (not stored)


# ---------------------------------------------------------------------------------------------
# pure helpers


def close_time_ms(open_ms: np.ndarray, interval: Interval) -> np.ndarray:
    """Close times (n,) int64 ms of candles opening at ``open_ms`` (n,): open + interval - 1."""
    return np.asarray(open_ms, dtype=np.int64) + (interval.ms - 1)


def _month_keys(open_ms: np.ndarray) -> np.ndarray:
    """Month index (n,) int64 = year * 12 + (month - 1) of epoch-ms times (n,)."""
    months = np.asarray(open_ms, dtype=np.int64).astype("datetime64[ms]").astype("datetime64[M]")
    return months.astype(np.int64) + 1970 * 12


def _month_of_key(key: int) -> Month:
    """(year, month) of a month index."""
    return int(key) // 12, int(key) % 12 + 1


def _month_label(month: Month) -> str:
    return f"{month[0]:04d}-{month[1]:02d}"


def _to_ms_scalar(value: object) -> int:
    """Epoch ms of an int (ms), ``pd.Timestamp``, ``datetime`` or ISO string (naive = UTC)."""
    if isinstance(value, bool):
        raise ValueError(f"not a time: {value!r}")
    if isinstance(value, int | np.integer):
        return int(value)
    if not isinstance(value, str | datetime | pd.Timestamp | np.datetime64):
        raise ValueError(f"not a time: {value!r}")
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"not a time: {value!r}") from exc
    if ts is pd.NaT:
        raise ValueError(f"not a time: {value!r}")
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return int(ts.value // 1_000_000)


def _ms_to_ts(ms: int) -> pd.Timestamp:
    return pd.Timestamp(int(ms), unit="ms", tz="UTC")


def validate_candles(candles: pd.DataFrame, interval: Interval) -> pd.DataFrame:
    """Cast an incoming frame (n, 9) to the schema, sorted and unique on open_time, or raise.

    Checks: exactly the schema columns, castable dtypes, finite prices and volumes, prices > 0,
    volumes and trade counts >= 0, low <= open, close <= high, open times on the interval grid,
    close_time == open_time + interval - 1 ms, and no conflicting duplicate open times.
    """
    if not isinstance(candles, pd.DataFrame):
        raise ValueError(f"candles must be a pandas DataFrame, got {type(candles).__name__}")
    extra = [c for c in candles.columns if c not in CANDLE_DTYPES]
    if extra:
        raise ValueError(f"candles have unknown columns {extra}; expected {list(CANDLE_COLUMNS)}")
    for col in ("open_time", "close_time"):
        if col in candles.columns and candles[col].isna().any():
            raise ValueError(f"candles have missing {col}")
    if "trade_count" in candles.columns and pd.api.types.is_float_dtype(candles["trade_count"]):
        tc = candles["trade_count"].to_numpy(dtype=np.float64)
        if not (np.isfinite(tc) & (tc == np.round(tc))).all():
            raise ValueError("candles have a missing or fractional trade_count")
    try:
        df = cast_candles(candles)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ValueError(f"candles do not match the candle schema: {exc}") from exc
    if df.empty:
        return df
    num = df[list(PRICE_COLUMNS) + ["volume_base", "volume_quote"]].to_numpy(dtype=np.float64)
    if not np.isfinite(num).all():
        bad = df.loc[~np.isfinite(num).all(axis=1), "open_time"].iloc[0]
        raise ValueError(f"candle at {bad} has a NaN or infinite price or volume")
    o, h, lo, c, vb, vq = (num[:, i] for i in range(6))
    checks = {
        "price <= 0": (lo <= 0),
        "low > open": lo > o,
        "low > close": lo > c,
        "open > high": o > h,
        "close > high": c > h,
        "negative volume": (vb < 0) | (vq < 0),
        "negative trade_count": df["trade_count"].to_numpy() < 0,
    }
    for what, mask in checks.items():
        if mask.any():
            bad = df["open_time"].iloc[int(np.argmax(mask))]
            raise ValueError(f"candle at {bad} is inconsistent: {what}")
    open_ms = to_ms(df["open_time"])
    implausible = (open_ms < _EARLIEST_MS) | (open_ms >= _LATEST_MS)
    if implausible.any():
        bad = df["open_time"].iloc[int(np.argmax(implausible))]
        raise ValueError(
            f"candle open_time {bad} is outside 2000..2100: epoch seconds passed as milliseconds?"
        )
    off_grid = open_ms % interval.ms != 0
    if off_grid.any():
        bad = df["open_time"].iloc[int(np.argmax(off_grid))]
        raise ValueError(f"candle at {bad} is not on the {interval.value} grid")
    wrong_close = to_ms(df["close_time"]) != close_time_ms(open_ms, interval)
    if wrong_close.any():
        i = int(np.argmax(wrong_close))
        raise ValueError(
            f"candle at {df['open_time'].iloc[i]} has close_time {df['close_time'].iloc[i]}; "
            f"expected open_time + {interval.value} - 1 ms"
        )
    df = df.sort_values("open_time", kind="stable", ignore_index=True)
    dup = df["open_time"].duplicated(keep="first")
    if dup.any():
        if df.duplicated(keep="first").sum() != dup.sum():
            bad = df.loc[dup & ~df.duplicated(keep="first"), "open_time"].iloc[0]
            raise ValueError(f"candles contain two different rows for open_time {bad}")
        df = df.loc[~dup].reset_index(drop=True)
    return df


def _is_stored(times: np.ndarray, stored: np.ndarray) -> np.ndarray:
    """Mask (m,) of ``times`` (m,) present in the ascending, unique ``stored`` (n,): O(m log n)."""
    if len(stored) == 0 or len(times) == 0:
        return np.zeros(len(times), dtype=bool)
    pos = np.minimum(np.searchsorted(stored, times), len(stored) - 1)
    return stored[pos] == times


# ---------------------------------------------------------------------------------------------
# Parquet I/O (module functions so tests can inject a failure into one write)


def _write_table(table: pa.Table, path: Path) -> None:
    """Write one partition table to ``path`` (a temporary file)."""
    pq.write_table(
        table,
        path,
        compression=COMPRESSION,
        use_dictionary=False,
        column_encoding=_COLUMN_ENCODING,
        write_statistics=True,
        sorting_columns=[pq.SortingColumn(0)],
    )


def _read_partition(path: Path, columns: list[str] | None = None) -> pa.Table:
    """Read one partition file, checking its schema; raise ``ValueError`` naming the file."""
    try:
        table = pq.read_table(path, columns=columns)
    except (OSError, pa.ArrowException) as exc:
        raise ValueError(f"unreadable candle partition {path}: {exc}") from exc
    expected = (
        ARROW_SCHEMA if columns is None else pa.schema([ARROW_SCHEMA.field(c) for c in columns])
    )
    if not table.schema.equals(expected, check_metadata=False):
        # nullability differences are harmless; compare names and types
        if [(f.name, f.type) for f in table.schema] != [(f.name, f.type) for f in expected]:
            raise ValueError(f"candle partition {path} has schema {table.schema}, not the store's")
    return table


def _metadata(path: Path) -> pq.FileMetaData:
    """Parquet footer of one partition (no data pages read); ``ValueError`` naming the file."""
    try:
        return pq.read_metadata(path)
    except (OSError, pa.ArrowException) as exc:
        raise ValueError(f"unreadable candle partition {path}: {exc}") from exc


def _frame_to_table(df: pd.DataFrame) -> pa.Table:
    """Arrow table (n rows) in the partition schema from a cast candle frame."""
    if df.empty:
        arrays = [pa.array([], type=f.type) for f in ARROW_SCHEMA]
    else:
        arrays = [
            pa.Array.from_pandas(df[c], type=ARROW_SCHEMA.field(c).type) for c in CANDLE_COLUMNS
        ]
    return pa.Table.from_arrays(arrays, schema=ARROW_SCHEMA.with_metadata(_FILE_METADATA))


# ---------------------------------------------------------------------------------------------
# locking


class _HeldLock:
    """Per-lock-file state shared by the threads of this process."""

    def __init__(self) -> None:
        self.rlock = threading.RLock()
        self.depth = 0
        self.fd: int | None = None


_LOCKS: dict[str, _HeldLock] = {}
_LOCKS_GUARD = threading.Lock()


def _held_lock(path: Path) -> _HeldLock:
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(str(path), _HeldLock())


# ---------------------------------------------------------------------------------------------
# the store


class CandleStore:
    """Parquet candle store partitioned by exchange, symbol, interval, year and month."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        exchange: str = "poloniex",
        *,
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT_S,
    ) -> None:
        if not isinstance(exchange, str) or not _EXCHANGE_RE.fullmatch(exchange):
            raise ValueError(f"invalid exchange {exchange!r}: lower-case letters and digits only")
        self.root = Path(root)
        self.exchange = exchange
        self.lock_timeout = float(lock_timeout)

    # -- paths ---------------------------------------------------------------------------------

    def series_dir(self, symbol: str, interval: str | Interval) -> Path:
        """Folder of one series; validates ``symbol`` and ``interval`` (they become paths)."""
        sym = validate_symbol(symbol)
        iv = Interval.parse(interval)
        iv.ms  # noqa: B018 - raises for intervals without a fixed length (MONTH_1)
        return self.root / f"exchange={self.exchange}" / f"symbol={sym}" / f"interval={iv.value}"

    def partition_path(self, symbol: str, interval: str | Interval, year: int, month: int) -> Path:
        """Path of the ``part.parquet`` file of one month."""
        return (
            self.series_dir(symbol, interval)
            / f"year={year:04d}"
            / f"month={month:02d}"
            / PART_NAME
        )

    def _month_path(self, series: Path, month: Month) -> Path:
        return series / f"year={month[0]:04d}" / f"month={month[1]:02d}" / PART_NAME

    def _months(self, series: Path) -> dict[Month, Path]:
        """Committed month partitions of a series, ascending (temporary files are ignored)."""
        found: dict[Month, Path] = {}
        if not series.is_dir():
            return found
        for ydir in series.iterdir():
            ym = _YEAR_RE.fullmatch(ydir.name)
            if not ym or not ydir.is_dir():
                continue
            for mdir in ydir.iterdir():
                mm = _MONTH_RE.fullmatch(mdir.name)
                if not mm or not 1 <= int(mm.group(1)) <= 12:
                    continue
                part = mdir / PART_NAME
                if part.is_file():
                    found[(int(ym.group(1)), int(mm.group(1)))] = part
        return dict(sorted(found.items()))

    def partitions(self, symbol: str, interval: str | Interval) -> list[Path]:
        """Committed partition files of a series, oldest month first."""
        return list(self._months(self.series_dir(symbol, interval)).values())

    # -- locking -------------------------------------------------------------------------------

    @contextlib.contextmanager
    def lock(
        self, symbol: str, interval: str | Interval, timeout: float | None = None
    ) -> Iterator[None]:
        """Hold the exclusive per-series write lock (``flock`` on ``<series>/.lock``).

        Re-entrant within one thread (``append`` inside ``with store.lock(...)`` works); other
        threads and processes wait up to ``timeout`` seconds (default: the store's
        ``lock_timeout``), then get ``StoreLockedError``.
        """
        timeout = self.lock_timeout if timeout is None else float(timeout)
        series = self.series_dir(symbol, interval)
        label = f"{validate_symbol(symbol)} {Interval.parse(interval).value}"
        series.mkdir(parents=True, exist_ok=True)
        path = series / LOCK_NAME
        held = _held_lock(path)
        deadline = time.monotonic() + max(0.0, timeout)
        if not held.rlock.acquire(timeout=max(0.0, timeout)):
            raise StoreLockedError(self._locked_message(label, path, timeout))
        try:
            if held.depth == 0:
                held.fd = self._flock(path, deadline, label, timeout)
            held.depth += 1
            try:
                yield
            finally:
                held.depth -= 1
                if held.depth == 0 and held.fd is not None:
                    fcntl.flock(held.fd, fcntl.LOCK_UN)
                    os.close(held.fd)
                    held.fd = None
        finally:
            held.rlock.release()

    @staticmethod
    def _locked_message(label: str, path: Path, timeout: float) -> str:
        return (
            f"another ingest of {label} is running (lock {path} held for more than "
            f"{timeout:g} s); wait for it to finish"
        )

    def _flock(self, path: Path, deadline: float, label: str, timeout: float) -> int:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return fd
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise StoreLockedError(self._locked_message(label, path, timeout)) from None
                    time.sleep(0.02)
        except BaseException:
            os.close(fd)
            raise

    # -- writing -------------------------------------------------------------------------------

    def append(
        self,
        symbol: str,
        interval: str | Interval,
        candles: pd.DataFrame,
        *,
        server_now_ms: int | None = None,
    ) -> AppendResult:
        """Store the closed, new candles of ``candles`` (n, 9); rewrite only touched months."""
        series = self.series_dir(symbol, interval)
        iv = Interval.parse(interval)
        df = validate_candles(candles, iv)
        dropped_open = 0
        if server_now_ms is not None:
            now = _to_ms_scalar(server_now_ms)
            closed = to_ms(df["open_time"]) + iv.ms <= now
            dropped_open = int((~closed).sum())
            df = df.loc[closed].reset_index(drop=True)
        if df.empty:
            return AppendResult(0, None, None, [], 0, dropped_open)
        open_ms = to_ms(df["open_time"])
        keys = _month_keys(open_ms)
        added = conflicts = 0
        first_new: int | None = None
        last_new: int | None = None
        written: list[str] = []
        with self.lock(symbol, iv):
            self._remove_stale_temp_files(series)
            # keys are sorted because df is: months are visited (and committed) in time order
            bounds = np.flatnonzero(np.diff(keys)) + 1
            for lo, hi in zip(np.r_[0, bounds], np.r_[bounds, len(keys)], strict=True):
                month = _month_of_key(int(keys[lo]))
                incoming = df.iloc[lo:hi]
                new, n_conflicts = self._merge_month(series, month, incoming, symbol, iv)
                conflicts += n_conflicts
                if new is None:
                    continue
                written.append(_month_label(month))
                added += new[0]
                first_new = new[1] if first_new is None else min(first_new, new[1])
                last_new = new[2] if last_new is None else max(last_new, new[2])
        return AppendResult(
            added,
            None if first_new is None else _ms_to_ts(first_new),
            None if last_new is None else _ms_to_ts(last_new),
            written,
            conflicts,
            dropped_open,
        )

    def _merge_month(
        self, series: Path, month: Month, incoming: pd.DataFrame, symbol: str, iv: Interval
    ) -> tuple[tuple[int, int, int] | None, int]:
        """Merge one month's rows (m, 9) into its partition: ((added, first, last), conflicts)."""
        path = self._month_path(series, month)
        inc_ms = to_ms(incoming["open_time"])
        stored = _read_partition(path) if path.is_file() else None
        conflicts = 0
        if stored is not None and stored.num_rows:
            stored_ms = stored.column("open_time").cast(pa.int64()).to_numpy()
            if len(stored_ms) > 1 and not (np.diff(stored_ms) > 0).all():
                raise ValueError(f"candle partition {path} is not sorted and unique on open_time")
            dup = _is_stored(inc_ms, stored_ms)
            if dup.any():
                conflicts = self._count_conflicts(stored, stored_ms, incoming.loc[dup], inc_ms[dup])
                if conflicts:
                    log.warning(
                        "%s %s %s: %d incoming candle(s) differ from stored ones; kept the stored",
                        symbol,
                        iv.value,
                        _month_label(month),
                        conflicts,
                    )
            new = incoming.loc[~dup]
            new_ms = inc_ms[~dup]
        else:
            new, new_ms = incoming, inc_ms
        if new.empty:
            return None, conflicts
        new_table = _frame_to_table(new.reset_index(drop=True))
        if stored is None or stored.num_rows == 0:
            merged = new_table
        else:
            merged = pa.concat_tables([stored.cast(ARROW_SCHEMA), new_table.cast(ARROW_SCHEMA)])
            if new_ms[0] <= stored_ms[-1]:  # not a pure tail append: sort
                merged = merged.sort_by("open_time")
        merged = merged.replace_schema_metadata(_FILE_METADATA)
        with atomic_path(path) as tmp:
            _write_table(merged, tmp)
        return (len(new), int(new_ms[0]), int(new_ms[-1])), conflicts

    @staticmethod
    def _count_conflicts(
        stored: pa.Table, stored_ms: np.ndarray, dup_rows: pd.DataFrame, dup_ms: np.ndarray
    ) -> int:
        """Count incoming rows (k, 9) whose values differ from the stored row of that time."""
        idx = np.searchsorted(stored_ms, dup_ms)
        old = stored.take(pa.array(idx)).to_pandas()
        differ = np.zeros(len(dup_rows), dtype=bool)
        for col in _VALUE_COLUMNS:
            a = dup_rows[col].to_numpy()
            b = old[col].to_numpy()
            differ |= a != b
        return int(differ.sum())

    @staticmethod
    def _remove_stale_temp_files(series: Path) -> None:
        """Delete temporary files left by a crashed writer (caller holds the series lock)."""
        for tmp in series.glob(f"year=*/month=*/.{PART_NAME}.*.tmp"):
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
                log.info("removed stale temporary file %s", tmp)

    # -- reading -------------------------------------------------------------------------------

    def load(
        self,
        symbol: str,
        interval: str | Interval,
        start: object | None = None,
        end: object | None = None,
    ) -> pd.DataFrame:
        """Candles (n, 9) with ``start <= open_time <= end``, sorted, typed; empty typed if none."""
        series = self.series_dir(symbol, interval)
        start_ms = None if start is None else _to_ms_scalar(start)
        end_ms = None if end is None else _to_ms_scalar(end)
        if start_ms is not None and end_ms is not None and start_ms > end_ms:
            raise ValueError(f"start {start!r} is after end {end!r}")
        lo_key = None if start_ms is None else int(_month_keys(np.array([start_ms]))[0])
        hi_key = None if end_ms is None else int(_month_keys(np.array([end_ms]))[0])
        tables = []
        for month, path in self._months(series).items():
            key = month[0] * 12 + month[1] - 1
            if (lo_key is not None and key < lo_key) or (hi_key is not None and key > hi_key):
                continue
            tables.append(_read_partition(path).cast(ARROW_SCHEMA))
        if not tables:
            return empty_candles()
        table = pa.concat_tables(tables)
        times = table.column("open_time").cast(pa.int64()).to_numpy()
        if len(times) > 1 and not (np.diff(times) > 0).all():
            raise ValueError(f"candle store {series} is not sorted and unique on open_time")
        if start_ms is not None or end_ms is not None:
            lo = 0 if start_ms is None else int(np.searchsorted(times, start_ms, side="left"))
            hi = len(times) if end_ms is None else int(np.searchsorted(times, end_ms, side="right"))
            table = table.slice(lo, max(0, hi - lo))
        return cast_candles(table.to_pandas())

    def _open_times(self, series: Path) -> np.ndarray:
        """All stored open times (n,) int64 ms, ascending."""
        chunks = [
            _read_partition(p, ["open_time"]).column("open_time").cast(pa.int64()).to_numpy()
            for p in self._months(series).values()
        ]
        return np.concatenate(chunks) if chunks else np.empty(0, dtype=np.int64)

    def last_open_time(self, symbol: str, interval: str | Interval) -> pd.Timestamp | None:
        """Open time of the newest stored candle, from the newest partition's metadata only."""
        series = self.series_dir(symbol, interval)
        for path in reversed(list(self._months(series).values())):
            newest = _max_open_time_ms(path)
            if newest is not None:
                return _ms_to_ts(newest)
        return None

    def gaps(self, symbol: str, interval: str | Interval) -> pd.DataFrame:
        """Missing candles strictly inside the stored range: columns start, end (first/last
        missing open_time) and missing (count), one row per hole, oldest first."""
        iv = Interval.parse(interval)
        times = self._open_times(self.series_dir(symbol, iv))
        step = np.diff(times)
        holes = np.flatnonzero(step > iv.ms)
        start = times[holes] + iv.ms
        end = times[holes + 1] - iv.ms
        return pd.DataFrame(
            {
                "start": pd.to_datetime(start, unit="ms", utc=True).as_unit("ms"),
                "end": pd.to_datetime(end, unit="ms", utc=True).as_unit("ms"),
                "missing": ((end - start) // iv.ms + 1).astype(np.int64),
            }
        )

    def fingerprint(self, symbol: str, interval: str | Interval) -> str:
        """Content fingerprint (hex) from partition names, sizes and Parquet footer metadata."""
        series = self.series_dir(symbol, interval)
        parts = []
        for month, path in self._months(series).items():
            md = _metadata(path)
            groups = []
            for g in range(md.num_row_groups):
                rg = md.row_group(g)
                cols = []
                for c in range(rg.num_columns):
                    col = rg.column(c)
                    st = col.statistics
                    stats = (
                        [str(st.min), str(st.max), st.null_count]
                        if st is not None and st.has_min_max
                        else None
                    )
                    cols.append([col.path_in_schema, col.total_compressed_size, stats])
                groups.append([rg.num_rows, cols])
            parts.append([_month_label(month), path.stat().st_size, md.num_rows, groups])
        payload = json.dumps(
            [DATA_FORMAT_VERSION, self.exchange, series.parent.name, series.name, parts],
            separators=(",", ":"),
        )
        return hashlib.sha256(payload.encode()).hexdigest()[:32]


def _max_open_time_ms(path: Path) -> int | None:
    """Largest open_time (ms) in one partition, from row-group statistics when present."""
    md = _metadata(path)
    if md.num_rows == 0:
        return None
    col = md.schema.names.index("open_time")
    best: int | None = None
    for g in range(md.num_row_groups):
        rg = md.row_group(g)
        if rg.num_rows == 0:
            continue
        st = rg.column(col).statistics
        if st is None or not st.has_min_max:
            times = _read_partition(path, ["open_time"]).column("open_time")
            return int(pc.max(times.cast(pa.int64())).as_py())
        value = _to_ms_scalar(pd.Timestamp(st.max))
        best = value if best is None else max(best, value)
    return best
