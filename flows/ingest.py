"""The ingest flow: append every new, closed Poloniex candle to the Parquet candle store.

Recipe: validate the parameters (before any network call or write) -> take "now" from the
server -> per symbol, in parallel: resume after the stored end, fetch pages of <= 500 candles
forward and commit them in order -> publish a table artifact and a
``cryptoflow.candles.appended`` event per series that grew.

Why pages are fetched in batches (measured, see ``bench/ingest.py``): a Prefect task run per
500-candle page costs more than fetching and parsing the page itself, so a task run
(``fetch-pages``) fetches one *commit batch*: the pages of one UTC month (several months for
coarse intervals). Its retries still act per page: the batch object keeps the pages already
fetched, so a retry resumes at the page that failed (with the configured delays, 50% jitter,
the server's Retry-After, and no retry at all for a :class:`~tasks.poloniex.PermanentError`).
Each batch is committed with one ``CandleStore.append`` (which rewrites only that month) before
the next batch is fetched, and when a fetch fails for good the pages it did fetch are committed
first: a run that dies keeps everything up to its last committed batch, and the next run
resumes right after the stored end.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from dataclasses import asdict
from datetime import datetime
from typing import Any

import pandas as pd
from prefect import flow, get_run_logger, task, unmapped
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.events import emit_event

from storage.candles import CandleStore
from storage.layout import DataLayout
from storage.schema import Interval, validate_symbol
from tasks.poloniex import (
    PoloniexClient,
    PoloniexError,
    PoloniexSettings,
    SeriesOutcome,
    fetch_pages,
    ingest_series,
    retry_unless_permanent,
)

DEFAULT_LOOKBACK_DAYS = 30
EVENT_APPENDED = "cryptoflow.candles.appended"


class IngestError(RuntimeError):
    """An ingest that could not complete (the message says what failed and how to resume)."""


def _timestamp_ms(name: str, value: datetime | str | int | None) -> int | None:
    """A parameter date/time (naive = UTC) as epoch ms; ValueError naming ``name``."""
    if value is None or value == "":
        return None
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError):
        raise ValueError(f"{name}: not a date/time: {value!r}") from None
    if ts is pd.NaT:
        raise ValueError(f"{name}: not a date/time: {value!r}")
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return int(ts.value // 1_000_000)


def validate_request(
    symbols: list[str] | str,
    interval: Interval | str,
    start: datetime | str | None,
    end: datetime | str | None,
    base_url: str | None,
    lookback_days: float,
) -> tuple[list[str], Interval, int | None, int | None, str]:
    """Check every parameter; return (symbols, interval, start_ms, end_ms, base_url).

    Raises ``ValueError`` naming the bad parameter; touches neither the network nor the disk.
    """
    if isinstance(symbols, str):
        symbols = [symbols]
    if not symbols:
        raise ValueError("symbols: give at least one symbol, e.g. BTC_USDT")
    clean: list[str] = []
    for symbol in symbols:
        try:
            sym = validate_symbol(symbol)
        except ValueError as exc:
            raise ValueError(f"symbols: {exc}") from None
        if sym not in clean:
            clean.append(sym)
    try:
        iv = Interval.parse(interval)
        iv.ms  # noqa: B018 - raises for MONTH_1, which has no fixed length
    except ValueError as exc:
        raise ValueError(f"interval: {exc}") from None
    start_ms, end_ms = _timestamp_ms("start", start), _timestamp_ms("end", end)
    if start_ms is not None and end_ms is not None and start_ms > end_ms:
        raise ValueError(f"start ({start}) is after end ({end})")
    url = base_url or PoloniexSettings().poloniex_url
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"base_url: must start with http:// or https://, got {url!r}")
    if not lookback_days > 0:
        raise ValueError(f"lookback_days: must be positive, got {lookback_days}")
    return clean, iv, start_ms, end_ms, url


@task(
    name="server-time",
    retries=2,
    retry_delay_seconds=[1.0, 4.0],
    retry_jitter_factor=0.5,
    retry_condition_fn=retry_unless_permanent,
    cache_policy=NO_CACHE,
    persist_result=False,
)
def server_time(client: PoloniexClient) -> int:
    """The exchange's "now" in epoch ms (never the local clock)."""
    return client.server_time_ms()


@contextlib.contextmanager
def _progress(
    enabled: bool,
) -> Iterator[tuple[Callable[[str, int], None] | None, Callable[[str, int], None] | None]]:
    """(on_plan, on_page) callbacks drawing a progress bar per symbol on stderr, or Nones."""
    if not enabled:
        yield None, None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    bars: dict[str, Any] = {}
    counts: dict[str, int] = {}
    with Progress(
        "[bold]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        "pages",
        TimeRemainingColumn(),
        console=Console(stderr=True),
    ) as bar:

        def on_plan(symbol: str, pages: int) -> None:
            bars[symbol] = bar.add_task(symbol, total=pages)
            counts[symbol] = 0

        def on_page(symbol: str, candles: int) -> None:
            counts[symbol] += candles
            bar.update(bars[symbol], advance=1, description=f"{symbol} {counts[symbol]:,} candles")

        yield on_plan, on_page


def _publish(outcomes: list[SeriesOutcome], server_now_ms: int) -> None:
    """Table artifact of the run and one ``cryptoflow.candles.appended`` event per grown series."""
    rows = [
        {
            "symbol": o.symbol,
            "interval": o.interval,
            "candles added": o.added,
            "first new candle": o.first_new or "",
            "last new candle": o.last_new or "",
            "stored until": o.stored_until or "",
            "gaps": f"{o.gaps} ({o.missing} candles missing)",
            "status": "failed: " + o.error if o.error else "ok",
        }
        for o in outcomes
    ]
    now = pd.Timestamp(server_now_ms, unit="ms", tz="UTC").isoformat()
    create_table_artifact(
        table=rows, key="ingest-summary", description=f"Candles appended (server time {now})"
    )
    for o in outcomes:
        if o.added:
            emit_event(
                event=EVENT_APPENDED,
                resource={
                    "prefect.resource.id": f"cryptoflow.candles.{o.symbol}.{o.interval}",
                    "prefect.resource.name": f"{o.symbol} {o.interval} candles",
                },
                payload={k: v for k, v in asdict(o).items() if k != "error"},
            )


def _failure_message(failed: list[SeriesOutcome], base_url: str) -> str:
    parts = [
        f"{o.symbol} {o.interval} failed after retries: {o.error} "
        f"(committed up to {o.stored_until or 'nothing'})"
        for o in failed
    ]
    return (
        "ingest failed: "
        + "; ".join(parts)
        + f". Source: {base_url}. Every committed page is kept: re-run the same ingest to "
        "resume after the stored end."
    )


@flow(name="ingest", validate_parameters=False, log_prints=False)
def ingest(
    symbols: list[str] = ["BTC_USDT"],  # noqa: B006 - Prefect shows the default in its form
    interval: Interval = Interval.MINUTE_5,
    start: datetime | None = None,
    end: datetime | None = None,
    base_url: str | None = None,
    data_dir: str | None = None,
    lookback_days: float = DEFAULT_LOOKBACK_DAYS,
    retries: int | None = None,
    retry_delays: list[float] | None = None,
    max_requests_per_second: float | None = None,
    timeout: float | None = None,
    max_in_flight: int | None = None,
    progress: bool | None = None,
) -> list[dict[str, Any]]:
    """Append new closed candles of each symbol (in parallel) to the candle store.

    A new store starts at ``start`` or ``lookback_days`` before the server's now; an existing
    one resumes after its last candle. ``end`` defaults to the server's now. ``retries`` and
    ``retry_delays`` (seconds, jittered 50%) apply to each page fetch; ``base_url``, rate limit
    and timeout default to ``CRYPTOFLOW_*`` settings.

    Args:
        symbols: Markets to ingest in parallel, e.g. BTC_USDT.
        interval: Candle interval (Poloniex names; MONTH_1 is not supported).
        start: First candle of a new store (UTC); default lookback_days before the server's now.
        end: Last candle to fetch (UTC); default the server's now.
        base_url: Poloniex API or a `cryptoflow replay` URL (default $CRYPTOFLOW_POLONIEX_URL).
        data_dir: Data directory (default $CRYPTOFLOW_DATA_DIR or ./data).
        lookback_days: History fetched into a new store when start is empty.
        retries: Retries of a failing page (default $CRYPTOFLOW_RETRIES or 4).
        retry_delays: Seconds before each retry, the last repeating (default 1, 4, 15, 60).
        max_requests_per_second: Client-side rate limit, 0 = off (default 20).
        timeout: Seconds before one HTTP request times out (default 10).
        max_in_flight: Page requests of one symbol in flight at once (default 4).
        progress: Draw a progress bar on stderr (default: only on a terminal).
    """
    names, iv, start_ms, end_ms, url = validate_request(
        symbols, interval, start, end, base_url, lookback_days
    )
    settings = PoloniexSettings(poloniex_url=url)
    updates: dict[str, Any] = {
        "max_requests_per_second": max_requests_per_second,
        "timeout": timeout,
        "max_in_flight": max_in_flight,
        "retries": retries,
        "retry_delays": retry_delays,
    }
    settings = PoloniexSettings.model_validate(
        settings.model_dump() | {k: v for k, v in updates.items() if v is not None}
    )
    logger = get_run_logger()
    store = CandleStore(DataLayout.at(data_dir).candles)
    fetch = fetch_pages.with_options(
        retries=settings.retries, retry_delay_seconds=settings.retry_delays or [0.0]
    )
    show = sys.stderr.isatty() if progress is None else progress
    with PoloniexClient(
        url, timeout=settings.timeout, max_requests_per_second=settings.max_requests_per_second
    ) as client:
        try:
            now_ms = server_time.with_options(
                retries=min(2, settings.retries),
                retry_delay_seconds=(settings.retry_delays or [0.0])[:2],
            )(client)
        except PoloniexError as exc:
            raise IngestError(
                f"cannot get the server time from {url}: {exc}. Check --base-url "
                "(env CRYPTOFLOW_POLONIEX_URL); without network access, start "
                "`cryptoflow replay --data FILE` and pass the URL it prints as --base-url. "
                "Nothing was written."
            ) from exc
        default_start = now_ms - int(lookback_days * 86_400_000)
        with _progress(show) as (on_plan, on_page):
            futures = ingest_series.map(
                client=unmapped(client),
                store=unmapped(store),
                symbol=names,
                interval=unmapped(iv),
                server_now_ms=unmapped(now_ms),
                start_ms=unmapped(start_ms),
                end_ms=unmapped(end_ms),
                default_start_ms=unmapped(default_start),
                fetch=unmapped(fetch),
                on_page=unmapped(on_page),
                on_plan=unmapped(on_plan),
                in_flight=unmapped(settings.max_in_flight),
            )
            outcomes: list[SeriesOutcome] = []
            for name, future in zip(names, futures, strict=True):
                try:
                    outcomes.append(future.result())
                except Exception as exc:  # e.g. the store lock is held by another ingest
                    outcomes.append(SeriesOutcome(name, iv.value, error=f"{exc}"))
    for o in outcomes:
        logger.info(
            "%s %s: %d candles added (%s .. %s), stored until %s, %d gaps",
            o.symbol, o.interval, o.added, o.first_new, o.last_new, o.stored_until, o.gaps,
        )  # fmt: skip
    _publish(outcomes, now_ms)
    failed = [o for o in outcomes if o.failed]
    if failed:
        raise IngestError(_failure_message(failed, url))
    return [asdict(o) for o in outcomes]
