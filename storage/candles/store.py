"""``CandleStore``: the one entry point to the Parquet candle store of one exchange.

Hive-partitioned, one file per (series, month), appended atomically (rules in
:mod:`storage.candles.append`); writers take an exclusive per-series ``flock``
(:mod:`storage.candles.locking`). See docs/INTERFACES.md.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from storage.candles import append, known_gaps, partitions, read, summary
from storage.candles.append import AppendResult
from storage.candles.known_gaps import KnownGap
from storage.candles.locking import DEFAULT_LOCK_TIMEOUT_S, series_lock
from storage.candles.validate import validate_candles
from storage.remote import sync_scope
from storage.schema import Interval, validate_symbol


class CandleStore:
    """Parquet candle store partitioned by exchange, symbol, interval, year and month."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        exchange: str = partitions.DEFAULT_EXCHANGE,
        *,
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT_S,
    ) -> None:
        self.root = Path(root)
        self.exchange = partitions.validate_exchange(exchange)
        self.lock_timeout = float(lock_timeout)

    # -- paths ---------------------------------------------------------------------------------

    def series_dir(self, symbol: str, interval: str | Interval) -> Path:
        """Folder of one series; validates ``symbol`` and ``interval`` (they become paths).
        Under a remote data directory's mirror, the series is pulled first (once)."""
        path = partitions.series_dir(self.root, self.exchange, symbol, interval)
        sync_scope(path)
        return path

    def partition_path(self, symbol: str, interval: str | Interval, year: int, month: int) -> Path:
        """Path of the ``part.parquet`` file of one month."""
        return partitions.month_path(self.series_dir(symbol, interval), (year, month))

    def partitions(self, symbol: str, interval: str | Interval) -> list[Path]:
        """Committed partition files of a series, oldest month first."""
        return list(partitions.committed_months(self.series_dir(symbol, interval)).values())

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
        with series_lock(series / partitions.LOCK_NAME, label, timeout):
            yield

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
        df, dropped_open = append.closed_candles(validate_candles(candles, iv), iv, server_now_ms)
        if df.empty:
            return AppendResult(0, None, None, [], 0, dropped_open)
        with self.lock(symbol, iv):
            return append.write_months(series, df, symbol, iv, dropped_open)

    # -- reading -------------------------------------------------------------------------------

    def load(
        self,
        symbol: str,
        interval: str | Interval,
        start: object | None = None,
        end: object | None = None,
    ) -> pd.DataFrame:
        """Candles (n, 9) with ``start <= open_time <= end``, sorted, typed; empty typed if none."""
        return read.load_series(self.series_dir(symbol, interval), start, end)

    def first_open_time(self, symbol: str, interval: str | Interval) -> pd.Timestamp | None:
        """Open time of the oldest stored candle (reads the oldest partition's open times)."""
        return read.first_open_time(self.series_dir(symbol, interval))

    def last_open_time(self, symbol: str, interval: str | Interval) -> pd.Timestamp | None:
        """Open time of the newest stored candle, from the newest partition's metadata only."""
        return read.last_open_time(self.series_dir(symbol, interval))

    def gaps(self, symbol: str, interval: str | Interval) -> pd.DataFrame:
        """Missing candles strictly inside the stored range: columns start, end (first/last
        missing open_time) and missing (count), one row per hole, oldest first."""
        iv = Interval.parse(interval)
        return summary.gaps(self.series_dir(symbol, iv), iv)

    def fingerprint(self, symbol: str, interval: str | Interval) -> str:
        """Content fingerprint (hex) from partition names, sizes and Parquet footer metadata."""
        return summary.fingerprint(self.series_dir(symbol, interval), self.exchange)

    # -- known gaps ----------------------------------------------------------------------------

    def known_gaps(self, symbol: str, interval: str | Interval) -> list[KnownGap]:
        """Holes the server confirmed empty (see :mod:`storage.candles.known_gaps`)."""
        return known_gaps.read_known_gaps(self.series_dir(symbol, interval))

    def record_known_gaps(
        self,
        symbol: str,
        interval: str | Interval,
        confirmed: list[tuple[int, int]],
        checked_ms: int,
    ) -> tuple[pd.DataFrame, list[KnownGap]]:
        """Update the known gaps from ``confirmed`` (inclusive open-time runs the server lacked
        twice) and return (the store's holes, as :meth:`gaps`; the known ones among them)."""
        iv = Interval.parse(interval)
        series = self.series_dir(symbol, iv)
        with self.lock(symbol, iv):
            holes = summary.gaps(series, iv)
            previous = known_gaps.read_known_gaps(series)
            known = known_gaps.reconcile(holes, previous, confirmed, iv.ms, checked_ms)
            if known != previous:
                known_gaps.write_known_gaps(series, known)
        return holes, known
