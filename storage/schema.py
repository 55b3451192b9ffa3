"""One candle schema for every stored candle, the interval vocabulary, symbol validation and
the one epoch-ms time parser (:func:`to_epoch_ms`).

Every load goes through :func:`cast_candles`, so the rest of the code can rely on exact dtypes.
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import TypeVar

import numpy as np
import pandas as pd

from storage.errors import BadInputError

#: Column -> dtype of a stored candle. ``open_time``/``close_time`` are UTC with ms resolution.
CANDLE_DTYPES: dict[str, str] = {
    "open_time": "datetime64[ms, UTC]",
    "open": "float64",
    "high": "float64",
    "low": "float64",
    "close": "float64",
    "volume_base": "float64",
    "volume_quote": "float64",
    "trade_count": "int64",
    "close_time": "datetime64[ms, UTC]",
}
CANDLE_COLUMNS: tuple[str, ...] = tuple(CANDLE_DTYPES)
PRICE_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close")

_MINUTE = 60_000


E = TypeVar("E", bound=StrEnum)


def parse_choice(enum: type[E], value: object, label: str, fold: str | None = None) -> E:
    """``value`` as a member of ``enum`` (after ``str.upper``/``str.lower`` when ``fold``);
    else a ``ValueError`` naming the ``label`` and listing the valid values."""
    if isinstance(value, enum):
        return value
    text = str(value)
    try:
        return enum(getattr(text, fold)() if fold else text)
    except ValueError:
        valid = ", ".join(m.value for m in enum)
        raise ValueError(f"unknown {label} {value!r}; valid {label}s: {valid}") from None


class Interval(StrEnum):
    """Poloniex v3 candle intervals (the API's own names)."""

    MINUTE_1 = "MINUTE_1"
    MINUTE_5 = "MINUTE_5"
    MINUTE_10 = "MINUTE_10"
    MINUTE_15 = "MINUTE_15"
    MINUTE_30 = "MINUTE_30"
    HOUR_1 = "HOUR_1"
    HOUR_2 = "HOUR_2"
    HOUR_4 = "HOUR_4"
    HOUR_6 = "HOUR_6"
    HOUR_12 = "HOUR_12"
    DAY_1 = "DAY_1"
    DAY_3 = "DAY_3"
    WEEK_1 = "WEEK_1"
    MONTH_1 = "MONTH_1"

    @property
    def ms(self) -> int:
        """Length of one candle in milliseconds (``MONTH_1`` has none and raises)."""
        try:
            return _INTERVAL_MS[self]
        except KeyError:
            raise ValueError(
                f"interval {self.value} has no fixed length and is not supported by the store"
            ) from None

    @classmethod
    def parse(cls, value: str | Interval) -> Interval:
        """Parse an interval name, raising a ``ValueError`` that lists the valid ones."""
        return parse_choice(cls, value, "interval", fold="upper")


_INTERVAL_MS: dict[Interval, int] = {
    Interval.MINUTE_1: _MINUTE,
    Interval.MINUTE_5: 5 * _MINUTE,
    Interval.MINUTE_10: 10 * _MINUTE,
    Interval.MINUTE_15: 15 * _MINUTE,
    Interval.MINUTE_30: 30 * _MINUTE,
    Interval.HOUR_1: 60 * _MINUTE,
    Interval.HOUR_2: 120 * _MINUTE,
    Interval.HOUR_4: 240 * _MINUTE,
    Interval.HOUR_6: 360 * _MINUTE,
    Interval.HOUR_12: 720 * _MINUTE,
    Interval.DAY_1: 1440 * _MINUTE,
    Interval.DAY_3: 3 * 1440 * _MINUTE,
    Interval.WEEK_1: 7 * 1440 * _MINUTE,
}

# Symbols become path components (``symbol=BTC_USDT``): letters and digits around one underscore.
_SYMBOL_RE = re.compile(r"^[A-Z0-9]{1,16}_[A-Z0-9]{1,16}$")


def validate_symbol(symbol: str) -> str:
    """Return ``symbol`` upper-cased if it is a safe market symbol like ``BTC_USDT``, else raise."""
    if not isinstance(symbol, str):
        raise ValueError(f"symbol must be a string, got {type(symbol).__name__}")
    candidate = symbol.strip()
    # ASCII only, checked before folding: Unicode case rules would turn "ß_USDT" into "SS_USDT".
    candidate = candidate.upper() if candidate.isascii() else candidate
    if not _SYMBOL_RE.fullmatch(candidate):
        raise ValueError(
            f"invalid symbol {symbol!r}: expected BASE_QUOTE made of letters and digits, "
            "e.g. BTC_USDT"
        )
    return candidate


def empty_candles() -> pd.DataFrame:
    """An empty DataFrame with the candle schema (never ``None``)."""
    return cast_candles(pd.DataFrame({c: [] for c in CANDLE_COLUMNS}))


def cast_candles(df: pd.DataFrame) -> pd.DataFrame:
    """Select the schema columns in order and cast them to the schema dtypes.

    Integer-like time columns are read as epoch milliseconds.
    """
    missing = [c for c in CANDLE_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"candles lack columns {missing}")
    out = {}
    for col, dtype in CANDLE_DTYPES.items():
        s = df[col]
        if dtype.startswith("datetime64"):
            if not isinstance(s.dtype, pd.DatetimeTZDtype) and not np.issubdtype(
                s.dtype, np.datetime64
            ):
                s = pd.to_datetime(s.astype("int64"), unit="ms", utc=True)
            elif not isinstance(s.dtype, pd.DatetimeTZDtype):
                s = s.dt.tz_localize("UTC")
            s = s.astype(dtype)
        else:
            s = s.astype(dtype)
        out[col] = s.reset_index(drop=True)
    return pd.DataFrame(out)


def to_ms(ts: pd.Series | pd.DatetimeIndex) -> np.ndarray:
    """Epoch milliseconds (int64) of a UTC datetime column."""
    return np.asarray(pd.DatetimeIndex(ts).as_unit("ms").asi8, dtype=np.int64)


def to_epoch_ms(value: object, name: str | None = None) -> int:
    """Epoch ms of ONE time: an int (already ms), a ``pd.Timestamp``, ``datetime``,
    ``np.datetime64`` or a date/time string such as ISO 8601 (naive = UTC; ``"2017"`` is a year).

    The one parser of user and API times; anything else raises :class:`BadInputError`
    ``"<name>: not a date/time: <value>"`` (without the prefix when ``name`` is None).
    """
    prefix = f"{name}: " if name else ""
    if isinstance(value, bool):
        raise BadInputError(f"{prefix}not a date/time: {value!r}")
    if isinstance(value, int | np.integer):
        return int(value)
    if not isinstance(value, str | datetime | pd.Timestamp | np.datetime64):
        raise BadInputError(f"{prefix}not a date/time: {value!r}")
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError, OverflowError):
        raise BadInputError(f"{prefix}not a date/time: {value!r}") from None
    if ts is pd.NaT:
        raise BadInputError(f"{prefix}not a date/time: {value!r}")
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return int(ts.value // 1_000_000)


def from_epoch_ms(ms: int) -> pd.Timestamp:
    """The UTC ``pd.Timestamp`` of epoch ms (the inverse of :func:`to_epoch_ms`)."""
    return pd.Timestamp(int(ms), unit="ms", tz="UTC")
