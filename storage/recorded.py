"""The one reader of recorded candle files (legacy Poloniex CSV, Bitfinex CSV, Parquet store).

Every recorded file becomes a frame in the candle schema (``storage.schema``), sorted by
``open_time``, unique, on its interval's grid, ``close_time = open_time + interval - 1 ms``, with
``attrs["interval"]`` naming the interval. Formats (see ``../shared/data/README.md``):

- **legacy Poloniex** ``returnChartData`` CSV: ``date`` (unix s), high, low, open, close,
  ``volume`` = the *quote* currency (USDT), ``quoteVolume`` = the *base* currency (BTC),
  weightedAverage; no trade count (0).
- **Bitfinex 1-minute** CSV(.gz), no header: MTS (ms), OPEN, CLOSE, HIGH, LOW, VOLUME (base).
- **Bitfinex 5-minute** CSV(.gz) (derived): ``timestamp`` (unix s), open, high, low, close, volume.
- a **Parquet candle store** folder (the store root, its ``candles/`` or one series folder).

**Bitfinex quote volume.** Poloniex's quote volume (``amount`` in v3, ``volume`` in the legacy
files) is the quote currency that changed hands: the sum of price x size over the candle's
trades, i.e. base volume x the candle's volume-weighted average price. Bitfinex records only the
base volume, so the VWAP must be estimated from OHLC. We use the typical price
``(high + low + close) / 3``, not ``close``: on the recorded Poloniex files, where the true VWAP is
known (``weightedAverage``), the typical price is about twice as close to it (median relative
error 0.04 % vs 0.09 % on the 5-minute file, 0.10 % vs 0.23 % on the 2-hour file). So
``volume_quote = volume * (high + low + close) / 3`` and ``trade_count = 0``.

Bad files are the caller's input (:class:`BadInputError`); a store partition that cannot be read
is a :class:`CorruptStoreError`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from storage.errors import BadInputError, CorruptStoreError
from storage.schema import CANDLE_COLUMNS, Interval, cast_candles, to_ms, validate_symbol

#: Column names of the Bitfinex 1-minute files (they have no header; close comes before high).
BITFINEX_1M_COLUMNS = ("mts", "open", "close", "high", "low", "volume")
_BITFINEX_5M_HEADER = ["timestamp", "open", "high", "low", "close", "volume"]

_INTERVAL_BY_MS: dict[int, Interval] = {}
for _iv in Interval:
    with contextlib.suppress(ValueError):  # MONTH_1 has no fixed length
        _INTERVAL_BY_MS[_iv.ms] = _iv


def load_recorded(
    path: str | Path, *, interval: Interval | str | None = None, symbol: str | None = None
) -> pd.DataFrame:
    """Recorded candles (n rows, candle schema, sorted); ``attrs["interval"]`` names the interval.

    ``interval`` defaults to the most common spacing; ``symbol``/``interval`` pick one series out
    of a Parquet store folder holding several.
    """
    path = Path(path)
    if path.is_dir():
        return _load_parquet_dir(path, interval=interval, symbol=symbol)
    if not path.is_file():
        raise BadInputError(f"recorded data {path} does not exist")
    if path.suffix == ".parquet":
        return _finish(_read_parquet(path), interval)
    head = pd.read_csv(path, nrows=2, header=None, dtype=str)
    first = [str(v).strip().strip('"').lower() for v in head.iloc[0]]
    if "date" in first and "quotevolume" in first:
        return legacy_poloniex_candles(_read_csv(path), interval)
    if first[:6] == _BITFINEX_5M_HEADER:
        raw = _read_csv(path)
        return bitfinex_candles(raw["timestamp"].astype("int64") * 1000, raw, interval)
    if len(first) == 6 and all(_is_number(v) for v in first):  # Bitfinex 1m, no header
        raw = _read_csv(path, header=None, names=list(BITFINEX_1M_COLUMNS))
        return bitfinex_candles(raw["mts"].astype("int64"), raw, interval)
    raise BadInputError(
        f"{path.name}: unrecognised format (columns {first}); expected a legacy Poloniex CSV "
        "(date,high,low,open,close,volume,quoteVolume,...), a Bitfinex 1-minute CSV "
        "(MTS,OPEN,CLOSE,HIGH,LOW,VOLUME), the Bitfinex 5-minute CSV "
        "(timestamp,open,high,low,close,volume) or a Parquet candle store folder"
    )


def load_recorded_files(
    paths: Iterable[str | Path],
    *,
    interval: Interval | str | None = None,
    symbol: str | None = None,
) -> pd.DataFrame:
    """Several recorded files (e.g. yearly ones) as one series: sorted, the first file wins on a
    repeated ``open_time``; all must hold the same interval."""
    frames = [load_recorded(p, interval=interval, symbol=symbol) for p in paths]
    if not frames:
        raise BadInputError("no recorded files given")
    intervals = sorted({f.attrs["interval"] for f in frames})
    if len(intervals) > 1:
        raise BadInputError(f"recorded files hold different intervals {intervals}: pass interval=")
    if len(frames) == 1:
        return frames[0]
    out = pd.concat(frames, ignore_index=True)
    out = out.sort_values("open_time", kind="stable").drop_duplicates("open_time", keep="first")
    out = out.reset_index(drop=True)
    out.attrs["interval"] = intervals[0]
    return out


def legacy_poloniex_candles(
    raw: pd.DataFrame, interval: Interval | str | None = None
) -> pd.DataFrame:
    """Rows of a legacy Poloniex ``returnChartData`` CSV (n,) as candles: ``volume`` is the quote
    currency, ``quoteVolume`` the base currency; no trade count."""
    frame = pd.DataFrame(
        {
            "open_time": raw["date"].astype("int64") * 1000,
            "open": raw["open"],
            "high": raw["high"],
            "low": raw["low"],
            "close": raw["close"],
            "volume_base": raw["quoteVolume"],
            "volume_quote": raw["volume"],
            "trade_count": 0,
        }
    )
    return _finish(frame, interval)


def bitfinex_candles(
    open_ms: pd.Series, raw: pd.DataFrame, interval: Interval | str | None = None
) -> pd.DataFrame:
    """Bitfinex rows (n,) with open times ``open_ms`` (epoch ms) as candles; ``volume_quote``
    from the typical price (see the module docstring), no trade count."""
    typical = (raw["high"] + raw["low"] + raw["close"]) / 3.0
    frame = pd.DataFrame(
        {
            "open_time": open_ms,
            "open": raw["open"],
            "high": raw["high"],
            "low": raw["low"],
            "close": raw["close"],
            "volume_base": raw["volume"],
            "volume_quote": raw["volume"] * typical,
            "trade_count": 0,
        }
    )
    return _finish(frame, interval)


def infer_interval(open_ms: np.ndarray) -> Interval:
    """The interval of sorted open times (n,) in epoch ms: their most common spacing."""
    if len(open_ms) < 2:
        raise BadInputError("cannot infer the interval from fewer than 2 candles: pass interval=")
    steps, counts = np.unique(np.diff(open_ms), return_counts=True)
    step = int(steps[np.argmax(counts)])
    if step not in _INTERVAL_BY_MS:
        raise BadInputError(
            f"candle spacing of {step} ms is not a Poloniex interval: pass interval="
        )
    return _INTERVAL_BY_MS[step]


def _finish(frame: pd.DataFrame, interval: Interval | str | None) -> pd.DataFrame:
    """Sort, check, add close_time and cast a recorded frame (n rows, ``open_time`` in epoch ms)."""
    frame = frame.sort_values("open_time", kind="stable").reset_index(drop=True)
    open_ms = frame["open_time"].to_numpy(dtype=np.int64)
    if len(open_ms) > 1 and (np.diff(open_ms) == 0).any():
        raise BadInputError("recorded candles repeat an open time")
    iv = Interval.parse(interval) if interval else infer_interval(open_ms)
    if (open_ms % iv.ms).any():
        raise BadInputError(f"recorded candles are not on the {iv.value} grid")
    frame["close_time"] = open_ms + iv.ms - 1
    out = cast_candles(frame)
    out.attrs["interval"] = iv.value
    return out


def _read_csv(path: Path, **kwargs: object) -> pd.DataFrame:
    """pandas >= 3 parses floats correctly rounded by default (the same doubles as ``float()``)."""
    return pd.read_csv(path, **kwargs)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _read_parquet(path: Path, columns: list[str] | None = None) -> pd.DataFrame:
    """One Parquet file; one that cannot be read is a :class:`CorruptStoreError` naming it."""
    try:
        return pd.read_parquet(path, columns=columns)
    except (OSError, pa.ArrowException) as exc:
        raise CorruptStoreError(path, f"unreadable candle partition: {exc}") from exc


def _load_parquet_dir(
    root: Path, *, interval: Interval | str | None, symbol: str | None
) -> pd.DataFrame:
    """The one series under a Parquet candle store folder (``symbol``/``interval`` pick it)."""
    files = sorted(root.rglob("*.parquet"))
    if symbol:
        files = [f for f in files if f"symbol={validate_symbol(symbol)}" in f.parts] or files
    if interval:
        iv = Interval.parse(interval).value
        files = [f for f in files if f"interval={iv}" in f.parts] or files
    if not files:
        raise BadInputError(f"no Parquet candle files under {root}")
    series = {tuple(p for p in f.parts if p.startswith(("symbol=", "interval="))) for f in files}
    if len(series) > 1:
        raise BadInputError(
            f"{root} holds several series {sorted(series)}: pass --symbol and --interval"
        )
    if interval is None:
        named = [p.split("=", 1)[1] for p in next(iter(series)) if p.startswith("interval=")]
        interval = named[0] if named else None
    frames = [cast_candles(_read_parquet(f, columns=list(CANDLE_COLUMNS))) for f in files]
    frame = pd.concat(frames, ignore_index=True)
    frame["open_time"] = to_ms(frame["open_time"])
    return _finish(frame.drop(columns="close_time"), interval)
