"""The candle store: Hive-partitioned Parquet, one file per (series, month), appended atomically.

Modules: ``store`` (:class:`CandleStore`, the entry point), ``partitions`` (paths and months),
``parquet`` (one file's schema and I/O), ``validate`` (incoming frames), ``append`` (merging
months), ``read`` (loading), ``summary`` (gaps, fingerprint), ``known_gaps`` (holes the server
confirmed), ``locking`` (the series lock).
"""

from storage.candles.append import AppendResult
from storage.candles.known_gaps import KnownGap
from storage.candles.locking import StoreLockedError
from storage.candles.store import CandleStore
from storage.candles.validate import close_time_ms

__all__ = ["AppendResult", "CandleStore", "KnownGap", "StoreLockedError", "close_time_ms"]
