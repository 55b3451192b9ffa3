"""An ingest request checked before any request or write, and the client settings it implies."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from storage.errors import BadInputError
from storage.schema import Interval, to_epoch_ms, validate_symbol
from storage.settings import PoloniexSettings
from tasks.ingest.outcome import iso
from tasks.poloniex.client import check_base_url

DEFAULT_LOOKBACK_DAYS = 30
DAY_MS = 86_400_000


def _optional_ms(name: str, value: datetime | str | int | None) -> int | None:
    """A parameter date/time (naive = UTC) as epoch ms, None when empty."""
    return None if value is None or value == "" else to_epoch_ms(value, name)


def validate_request(
    symbols: list[str] | str,
    interval: Interval | str,
    start: datetime | str | None,
    end: datetime | str | None,
    base_url: str | None,
    lookback_days: float,
) -> tuple[list[str], Interval, int | None, int | None, str]:
    """Check every parameter; return (symbols, interval, start_ms, end_ms, base_url).

    Raises :class:`BadInputError` naming the bad parameter; touches neither the network nor the
    disk.
    """
    if isinstance(symbols, str):
        symbols = [symbols]
    if not symbols:
        raise BadInputError("symbols: give at least one symbol, e.g. BTC_USDT")
    clean: list[str] = []
    for symbol in symbols:
        try:
            sym = validate_symbol(symbol)
        except ValueError as exc:
            raise BadInputError(f"symbols: {exc}") from None
        if sym not in clean:
            clean.append(sym)
    try:
        iv = Interval.parse(interval)
        iv.ms  # noqa: B018 - raises for MONTH_1, which has no fixed length
    except ValueError as exc:
        raise BadInputError(f"interval: {exc}") from None
    start_ms, end_ms = _optional_ms("start", start), _optional_ms("end", end)
    if start_ms is not None and end_ms is not None and start_ms > end_ms:
        raise BadInputError(f"start ({start}) is after end ({end})")
    url = check_base_url(base_url or PoloniexSettings().poloniex_url)
    if not lookback_days > 0:
        raise BadInputError(f"lookback_days: must be positive, got {lookback_days}")
    return clean, iv, start_ms, end_ms, url


def check_start_before_now(start_ms: int | None, server_now_ms: int) -> None:
    """:class:`BadInputError` when ``start`` is after the server's now: nothing to fetch."""
    if start_ms is not None and start_ms > server_now_ms:
        raise BadInputError(
            f"start ({iso(start_ms)}) is after the server's now ({iso(server_now_ms)}): "
            "there is nothing to fetch yet; nothing was written"
        )


def default_start_ms(server_now_ms: int, lookback_days: float) -> int:
    """Where a new store starts: ``lookback_days`` before the server's now (epoch ms)."""
    return server_now_ms - int(lookback_days * DAY_MS)


def client_settings(url: str, **overrides: Any) -> PoloniexSettings:
    """The ``CRYPTOFLOW_*`` settings for ``url`` with every override that is not None applied."""
    settings = PoloniexSettings(poloniex_url=url)
    given = {k: v for k, v in overrides.items() if v is not None}
    return PoloniexSettings.model_validate(settings.model_dump() | given)
