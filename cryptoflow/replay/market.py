"""The served markets and the v3 candles endpoint's semantics over their recorded candles.

``GET /markets/{symbol}/candles`` as the real API answers it: ``limit`` defaults to 100 and may
not exceed 500; the answer is anchored to ``endTime`` (default: now), so with only ``startTime``
the *latest* candles come back; numbers are strings; errors are ``{"code", "message"}`` with a
non-200 status (24101 unknown symbol, 24102 bad interval, 24103 bad endTime, 24104 bad limit,
24105 bad startTime). Nothing after the server clock is served; requests for another interval
than the served one get 24102.

**The still-open candle** (``open_time <= now < open_time + interval``, the candle store's
rule: it has closed only once ``close_time < now``) is served partial by the *scale
rule*: with ``f = (now - open_time) / interval`` elapsed, ``open`` is the recorded open,
``high``/``low``/``close`` are ``open + f * (recorded - open)``, volumes and the trade count are
scaled by ``f``. So it always differs from the final candle (a store that kept it would be
caught) while keeping ``low <= open, close <= high``. ``buyTakerAmount``/``buyTakerQuantity`` are
not recorded and served as "0".
"""

from __future__ import annotations

import numpy as np
import orjson
import pandas as pd

from storage.errors import BadInputError
from storage.schema import Interval, cast_candles, to_ms, validate_symbol

DEFAULT_LIMIT = 100
MAX_LIMIT = 500


class ApiError(Exception):
    """A request the real API refuses: HTTP 400 with ``{"code", "message"}``."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def render_rows(candles: pd.DataFrame, interval: Interval) -> list[bytes]:
    """One JSON array per candle (n,), in the v3 field order, numbers as exact strings."""
    c = {col: candles[col].tolist() for col in ("open", "high", "low", "close")}
    base = candles["volume_base"].tolist()
    quote = candles["volume_quote"].tolist()
    trades = candles["trade_count"].tolist()
    start = to_ms(candles["open_time"]).tolist()
    iv = interval.value
    step = interval.ms
    out = []
    for i in range(len(start)):
        wavg = quote[i] / base[i] if base[i] > 0 else c["close"][i]
        s = start[i]
        out.append(
            f'["{c["low"][i]!r}","{c["high"][i]!r}","{c["open"][i]!r}","{c["close"][i]!r}",'
            f'"{quote[i]!r}","{base[i]!r}","0","0",{trades[i]},{s + step - 1},"{wavg!r}",'
            f'"{iv}",{s},{s + step - 1}]'.encode()
        )
    return out


class Series:
    """One symbol's candles (n rows), their open times (n,) and pre-rendered rows (n,)."""

    def __init__(self, candles: pd.DataFrame, interval: Interval) -> None:
        self.candles = cast_candles(candles)
        self.interval = interval
        self.open_ms = to_ms(self.candles["open_time"])
        if len(self.open_ms) and (
            (np.diff(self.open_ms) <= 0).any() or (self.open_ms % interval.ms).any()
        ):
            raise BadInputError(f"candles must be sorted, unique and on the {interval} grid")
        self.rows = render_rows(self.candles, interval)
        self.end_ms = int(self.open_ms[-1]) + interval.ms if len(self.open_ms) else 0

    def partial(self, i: int, now_ms: int) -> bytes:
        """Candle ``i``, still open at ``now_ms``, scaled to its elapsed fraction (scale rule)."""
        record = self.candles.iloc[i]
        start = int(self.open_ms[i])
        f = (now_ms - start) / self.interval.ms
        o = float(record["open"])
        low, high, close = (o + f * (float(record[k]) - o) for k in ("low", "high", "close"))
        base = float(record["volume_base"]) * f
        quote = float(record["volume_quote"]) * f
        wavg = quote / base if base > 0 else close
        row = [
            repr(low), repr(high), repr(o), repr(close), repr(quote), repr(base), "0", "0",
            int(int(record["trade_count"]) * f), now_ms, repr(wavg), self.interval.value, start,
            start + self.interval.ms - 1,
        ]  # fmt: skip
        return orjson.dumps(row)


class Markets:
    """The served symbols, all of one ``interval``: symbol -> :class:`Series`."""

    def __init__(self, frames: dict[str, pd.DataFrame], interval: Interval) -> None:
        self.interval = interval
        self.series = {validate_symbol(name): Series(f, interval) for name, f in frames.items()}
        #: just after the last candle of any market closes (0 when there are none)
        self.end_ms = max((s.end_ms for s in self.series.values()), default=0)

    def page(self, symbol: str, params: dict[str, str], now: int) -> list[bytes]:
        """The rows (n,) one candles request gets at server time ``now``; else :class:`ApiError`."""
        series = self.series.get(symbol)
        if series is None:
            raise ApiError(24101, f"Invalid symbol: {symbol}")
        raw_interval = params.get("interval", "")
        try:
            interval = Interval(raw_interval)
        except ValueError:
            raise ApiError(24102, f"Invalid interval: {raw_interval!r}") from None
        if interval is not self.interval:
            raise ApiError(24102, f"this replay serves {self.interval.value} only")
        try:
            limit = int(params.get("limit", DEFAULT_LIMIT))
        except ValueError:
            raise ApiError(24104, "Invalid limit") from None
        if not 1 <= limit <= MAX_LIMIT:
            raise ApiError(24104, f"Invalid limit: {limit} (1..{MAX_LIMIT})")
        bounds = {}
        for key, code in (("startTime", 24105), ("endTime", 24103)):
            if key in params:
                try:
                    bounds[key] = int(params[key])
                except ValueError:
                    raise ApiError(code, f"Invalid {key}: {params[key]!r}") from None
        end = min(bounds.get("endTime", now), now)
        start = bounds.get("startTime")
        if start is not None and start > end:
            return []
        hi = int(np.searchsorted(series.open_ms, end, side="right"))
        lo = int(np.searchsorted(series.open_ms, start, side="left")) if start is not None else 0
        lo = max(lo, hi - limit)
        rows = series.rows[lo:hi]
        if hi > lo and int(series.open_ms[hi - 1]) + self.interval.ms > now:
            rows = [*rows[:-1], series.partial(hi - 1, now)]
        return rows
