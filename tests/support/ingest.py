"""Ingest test support: run the flow against a replay, read the store, compare to the source."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from storage.candles import CandleStore
from storage.layout import DataLayout

#: Fast retries, no client-side rate limit, no progress bar.
FAST = {"retry_delays": [0.01], "max_requests_per_second": 0, "progress": False}
FIVE_MIN = 300_000


def candle_store(data_dir: Path) -> CandleStore:
    """The candle store of ``data_dir``."""
    return CandleStore(DataLayout.at(data_dir).candles)


def stored(data_dir: Path, symbol: str = "BTC_USDT", interval: str = "MINUTE_5") -> pd.DataFrame:
    """Every stored candle of one series (n, 9)."""
    return candle_store(data_dir).load(symbol, interval)


def run_ingest(srv, data_dir: Path, **kw):
    """The ingest flow against the replay ``srv`` into ``data_dir`` (FAST unless overridden)."""
    from flows.ingest import ingest

    return ingest(base_url=srv.url, data_dir=str(data_dir), **(FAST | kw))


def assert_store_equals(data_dir: Path, source: pd.DataFrame, **series: str) -> None:
    """The stored series equals ``source`` candle by candle (no loss, no duplicate, no change)."""
    got = stored(data_dir, **series)
    assert got["open_time"].is_unique and got["open_time"].is_monotonic_increasing
    pd.testing.assert_frame_equal(got, source.reset_index(drop=True))


def page_params(srv) -> list[tuple[int, int]]:
    """(startTime, endTime) of every candle request the replay answered, in order."""
    return [
        (int(e["params"]["startTime"]), int(e["params"]["endTime"]))
        for e in srv.candle_requests()
    ]
