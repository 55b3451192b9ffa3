"""The recorded files' names, and an independent oracle reader of them for tests.

The oracle reads the files with plain pandas, not through ``storage.recorded.load_recorded``, so
that a test checking the reader itself, or the replay's output, against the source file does not
check the code under test against itself. Use it only there; everywhere else read recorded
files with ``storage.recorded.load_recorded`` (the one reader the project, the replay and the
benchmarks use). The oracle follows the same documented conventions (legacy ``volume`` is the
quote currency, Bitfinex ``volume_quote = volume * (high + low + close) / 3``), written out anew.
"""

from __future__ import annotations

import pandas as pd

from storage.schema import cast_candles
from tests.support.paths import shared_file

POLONIEX_5M = "poloniex-USDT_BTC-5m-2017-07-14--2017-08-09.csv"
POLONIEX_30M = "poloniex-USDT_BTC-30m-2015-02-19--2017-07-13.csv"
BITFINEX_5M = "bitfinex-BTCUSD-5m-2015--2017.csv.gz"
BITFINEX_1M_2015 = "bitfinex-BTCUSD-1m-2015.csv.gz"


def poloniex_raw(name: str = POLONIEX_5M) -> pd.DataFrame:
    """A legacy Poloniex ``returnChartData`` CSV as recorded (skips the test when absent)."""
    return pd.read_csv(shared_file(name))


def poloniex_candles(raw: pd.DataFrame, interval_ms: int = 300_000) -> pd.DataFrame:
    """Legacy Poloniex rows (n,) in the candle schema: volume = quote (USDT), quoteVolume = base."""
    ms = raw["date"].astype("int64") * 1000
    return cast_candles(pd.DataFrame({
        "open_time": ms, "open": raw["open"], "high": raw["high"], "low": raw["low"],
        "close": raw["close"], "volume_base": raw["quoteVolume"], "volume_quote": raw["volume"],
        "trade_count": 0, "close_time": ms + interval_ms - 1,
    }))


def poloniex_5m() -> pd.DataFrame:
    """The real Poloniex 5-minute file (7,673 candles, Jul-Aug 2017) in the candle schema."""
    return poloniex_candles(poloniex_raw(POLONIEX_5M), 300_000)


def bitfinex_5m_candles() -> pd.DataFrame:
    """The derived Bitfinex 5-minute series 2015-2017 (280,652 candles, real gaps)."""
    raw = pd.read_csv(shared_file(BITFINEX_5M))
    ms = raw["timestamp"].astype("int64") * 1000
    return cast_candles(pd.DataFrame({
        "open_time": ms, "open": raw["open"], "high": raw["high"], "low": raw["low"],
        "close": raw["close"], "volume_base": raw["volume"],
        "volume_quote": raw["volume"] * ((raw["high"] + raw["low"] + raw["close"]) / 3.0),
        "trade_count": 0, "close_time": ms + 300_000 - 1,
    }))
