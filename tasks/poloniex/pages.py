"""One page of v3 candle rows: validation, parsing into candle-schema columns, and joining pages."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from storage.errors import BadInputError
from storage.schema import Interval, cast_candles, empty_candles
from tasks.poloniex.errors import PageValidationError

MAX_LIMIT = 500
N_FIELDS = 14

# Row field positions of the v3 candles endpoint.
_LOW, _HIGH, _OPEN, _CLOSE, _AMOUNT, _QUANTITY, _BUY_AMOUNT, _BUY_QTY = range(8)
_TRADES, _TS, _WAVG, _INTERVAL, _START, _CLOSE_TIME = range(8, 14)
_FLOAT_FIELDS = [_LOW, _HIGH, _OPEN, _CLOSE, _AMOUNT, _QUANTITY, _BUY_AMOUNT, _BUY_QTY, _WAVG]
_INT_FIELDS = [_TRADES, _TS, _START, _CLOSE_TIME]


def check_limit(limit: int) -> int:
    """``limit`` if it is a valid page size (1..500), else :class:`BadInputError`."""
    if not 1 <= limit <= MAX_LIMIT:
        raise BadInputError(f"limit must be in 1..{MAX_LIMIT}, got {limit}")
    return limit


def parse_candles(
    rows: Any,
    interval: Interval | str,
    start_ms: int | None = None,
    end_ms: int | None = None,
) -> pd.DataFrame:
    """Validate v3 candle rows (n, 14) and return them in the candle schema (n rows).

    Checks: a list of 14-field rows; finite numbers; int counts and times; the row's interval;
    low <= open, close <= high; volumes >= 0; open times on the grid, inside
    ``[start_ms, end_ms]`` and strictly increasing; ``closeTime == startTime + interval - 1``.
    Raises :class:`PageValidationError` naming the first problem.
    """
    return candles_frame([parse_candle_arrays(rows, interval, start_ms, end_ms)])


def candles_frame(pages: list[dict[str, np.ndarray]]) -> pd.DataFrame:
    """Concatenate parsed pages (each column (n_i,)) into one candle-schema frame (sum n_i rows)."""
    pages = [p for p in pages if len(p["open_time"])]
    if not pages:
        return empty_candles()
    columns = {c: np.concatenate([p[c] for p in pages]) for c in pages[0]}
    return cast_candles(pd.DataFrame(columns, copy=False))


def parse_candle_arrays(
    rows: Any,
    interval: Interval | str,
    start_ms: int | None = None,
    end_ms: int | None = None,
    *,
    drop_open: bool = False,
) -> dict[str, np.ndarray]:
    """Validate v3 candle rows (n, 14) into candle-schema columns, each (n,), times as epoch ms.

    The fast path of :func:`parse_candles` (no DataFrame per page); same checks. With
    ``drop_open``, rows still open by their own clock are left out (m <= n rows): ``0 < ts <
    closeTime``, ``ts`` being when the exchange last updated the row. Whatever ``/timestamp``
    says, such a row is partial. ``ts == 0`` carries no information (the API's own documented
    sample of a closed 2022 candle has it) and is left to the server-time rule of the store.
    """
    interval = Interval.parse(interval)
    step = interval.ms
    if not isinstance(rows, list):
        raise _fail(f"expected a list of {N_FIELDS}-field rows, got {_describe_payload(rows)}")
    for i, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != N_FIELDS:
            got = f"{len(row)} fields" if isinstance(row, list) else f"a {type(row).__name__}"
            raise _fail(f"row {i} has {got}, expected {N_FIELDS} fields (a legacy-format row?)")
    table = np.array(rows, dtype=object).reshape(len(rows), N_FIELDS)  # (n, 14)
    floats = _as_floats(table[:, _FLOAT_FIELDS])
    ints = _as_ints(table[:, _INT_FIELDS])
    low, high, open_, close, amount, quantity, buy_amount, buy_qty, _wavg = floats.T
    trades, ts, start, close_time = ints.T
    _check(np.isfinite(floats).all(axis=1), "a number is not finite")
    _check(table[:, _INTERVAL] == interval.value, f"interval is not the requested {interval.value}")
    _check(
        (low <= open_) & (low <= close) & (open_ <= high) & (close <= high),
        "prices out of order (need low <= open, close <= high)",
    )
    _check(low > 0, "price <= 0 (the candle store refuses it)")
    _check((amount >= 0) & (quantity >= 0) & (buy_amount >= 0) & (buy_qty >= 0), "negative volume")
    _check(trades >= 0, "negative trade count")
    _check(start % step == 0, f"open time off the {interval.value} grid")
    _check(close_time == start + step - 1, "closeTime is not startTime + interval - 1")
    if start_ms is not None:
        _check(start >= start_ms, f"open time before the requested startTime {start_ms}")
    if end_ms is not None:
        _check(start <= end_ms, f"open time after the requested endTime {end_ms}")
    if len(start) > 1:
        steps = np.diff(start) > 0
        if not steps.all():
            raise _fail(f"row {int(np.argmax(~steps)) + 1}: open times not strictly increasing")
    columns = {
        "open_time": start,
        "open": open_,
        "high": high,
        "low": low,
        "close": close,
        "volume_base": quantity,
        "volume_quote": amount,
        "trade_count": trades,
        "close_time": close_time,
    }
    if drop_open:
        still_open = (ts > 0) & (ts < close_time)
        if still_open.any():
            columns = {name: values[~still_open] for name, values in columns.items()}
    return columns


def _fail(message: str) -> PageValidationError:
    return PageValidationError(f"invalid candle page: {message}")


def _describe_payload(rows: Any) -> str:
    if isinstance(rows, dict):
        if {"code", "msg", "data"} <= rows.keys():
            return "a {code, msg, data} envelope (the futures API?), not a v3 spot candle list"
        if {"code", "message"} <= rows.keys():
            return f"an error reply {rows.get('code')}: {rows.get('message')}"
        return f"an object with keys {sorted(rows)[:8]}"
    return f"a {type(rows).__name__}"


def _as_floats(block: np.ndarray) -> np.ndarray:
    """Object block (n, k) of numeric strings/numbers -> float64 (n, k)."""
    try:
        return block.astype(np.float64)
    except (ValueError, TypeError, OverflowError) as exc:
        raise _fail(f"a price or volume is not a number ({exc})") from None


def _as_ints(block: np.ndarray) -> np.ndarray:
    """Object block (n, k) of JSON integers -> int64 (n, k); strings, floats and bools rejected."""
    for j in range(block.shape[1]):
        for v in block[:, j]:
            if type(v) is not int:
                raise _fail(f"{v!r} where an integer count or time is expected")
    try:
        return block.astype(np.int64)
    except OverflowError as exc:
        raise _fail(f"an integer is out of range ({exc})") from None


def _check(ok: np.ndarray, what: str) -> None:
    if not ok.all():
        raise _fail(f"row {int(np.argmax(~ok))}: {what}")
