"""Validation of incoming candle frames, and the close-time rule they must follow.

A candle covers ``[open_time, open_time + interval)``; its ``close_time`` is the last millisecond
inside it, ``open_time + interval - 1 ms`` (Poloniex's ``closeTime``). A frame that breaks a rule
raises :class:`BadInputError` before anything is written.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from storage.errors import BadInputError
from storage.schema import (
    CANDLE_COLUMNS,
    CANDLE_DTYPES,
    PRICE_COLUMNS,
    Interval,
    cast_candles,
    to_ms,
)

_EARLIEST_MS = 946_684_800_000  # 2000-01-01: earlier open times are a unit mistake
_LATEST_MS = 4_102_444_800_000  # 2100-01-01


def close_time_ms(open_ms: np.ndarray, interval: Interval) -> np.ndarray:
    """Close times (n,) int64 ms of candles opening at ``open_ms`` (n,): open + interval - 1."""
    return np.asarray(open_ms, dtype=np.int64) + (interval.ms - 1)


def validate_candles(candles: pd.DataFrame, interval: Interval) -> pd.DataFrame:
    """Cast an incoming frame (n, 9) to the schema, sorted and unique on open_time, or raise.

    Checks: exactly the schema columns, castable dtypes, finite prices and volumes, prices > 0,
    volumes and trade counts >= 0, low <= open, close <= high, open times on the interval grid,
    close_time == open_time + interval - 1 ms, and no conflicting duplicate open times.
    """
    df = _cast(candles)
    if df.empty:
        return df
    _check_values(df)
    _check_times(df, interval)
    df = df.sort_values("open_time", kind="stable", ignore_index=True)
    dup = df["open_time"].duplicated(keep="first")
    if dup.any():
        if df.duplicated(keep="first").sum() != dup.sum():
            bad = df.loc[dup & ~df.duplicated(keep="first"), "open_time"].iloc[0]
            raise BadInputError(f"candles contain two different rows for open_time {bad}")
        df = df.loc[~dup].reset_index(drop=True)
    return df


def _cast(candles: pd.DataFrame) -> pd.DataFrame:
    """The frame in the candle schema, or a :class:`BadInputError` saying why it is not."""
    if not isinstance(candles, pd.DataFrame):
        raise BadInputError(f"candles must be a pandas DataFrame, got {type(candles).__name__}")
    extra = [c for c in candles.columns if c not in CANDLE_DTYPES]
    if extra:
        raise BadInputError(
            f"candles have unknown columns {extra}; expected {list(CANDLE_COLUMNS)}"
        )
    for col in ("open_time", "close_time"):
        if col in candles.columns and candles[col].isna().any():
            raise BadInputError(f"candles have missing {col}")
    if "trade_count" in candles.columns and pd.api.types.is_float_dtype(candles["trade_count"]):
        tc = candles["trade_count"].to_numpy(dtype=np.float64)
        if not (np.isfinite(tc) & (tc == np.round(tc))).all():
            raise BadInputError("candles have a missing or fractional trade_count")
    try:
        return cast_candles(candles)
    except (TypeError, ValueError, OverflowError) as exc:
        raise BadInputError(f"candles do not match the candle schema: {exc}") from exc


def _check_values(df: pd.DataFrame) -> None:
    """Finite, positive prices in order; non-negative volumes and trade counts."""
    num = df[list(PRICE_COLUMNS) + ["volume_base", "volume_quote"]].to_numpy(dtype=np.float64)
    if not np.isfinite(num).all():
        bad = df.loc[~np.isfinite(num).all(axis=1), "open_time"].iloc[0]
        raise BadInputError(f"candle at {bad} has a NaN or infinite price or volume")
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
            raise BadInputError(f"candle at {bad} is inconsistent: {what}")


def _check_times(df: pd.DataFrame, interval: Interval) -> None:
    """Plausible open times on the interval grid; close_time = open_time + interval - 1 ms."""
    open_ms = to_ms(df["open_time"])
    implausible = (open_ms < _EARLIEST_MS) | (open_ms >= _LATEST_MS)
    if implausible.any():
        bad = df["open_time"].iloc[int(np.argmax(implausible))]
        raise BadInputError(
            f"candle open_time {bad} is outside 2000..2100: epoch seconds passed as milliseconds?"
        )
    off_grid = open_ms % interval.ms != 0
    if off_grid.any():
        bad = df["open_time"].iloc[int(np.argmax(off_grid))]
        raise BadInputError(f"candle at {bad} is not on the {interval.value} grid")
    wrong_close = to_ms(df["close_time"]) != close_time_ms(open_ms, interval)
    if wrong_close.any():
        i = int(np.argmax(wrong_close))
        raise BadInputError(
            f"candle at {df['open_time'].iloc[i]} has close_time {df['close_time'].iloc[i]}; "
            f"expected open_time + {interval.value} - 1 ms"
        )
