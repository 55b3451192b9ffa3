"""The ingest flow: append every new, closed Poloniex candle to the Parquet candle store.

Recipe: validate the parameters (before any network call or write) -> take "now" from the
server -> per symbol, in parallel: backfill before the stored first candle when ``start`` is
earlier, ask again for the holes near the stored end (all of them with ``repair``), fetch pages
of <= 500 candles forward from the stored end, committing in order -> publish a table artifact
and a ``cryptoflow.candles.appended`` event per series that grew.

Why batches (measured, ``bench/ingest.py``): a task run per 500-candle page costs more than
the page, so ``fetch-pages`` fetches one *commit batch* (one UTC month; several for coarse
intervals). Retries are per page inside it (Prefect's count per task run and its waits cannot
be interrupted): delays with 50% jitter, the server's Retry-After up to a cap, none for a
:class:`~tasks.poloniex.errors.PermanentError`. A page lacking candles of its range is asked
once more before it is believed; holes the server confirms are recorded as known gaps. Each
batch is committed before the next; on failure or Ctrl-C / SIGTERM (every wait ends at once)
the pages fetched are committed first and the series lock is released.
"""

from __future__ import annotations

import sys
from dataclasses import asdict
from typing import Any

from prefect import flow, unmapped

from flows.params import (
    DEFAULT_INTERVAL,
    DEFAULT_SYMBOL,
    BaseUrl,
    DataDir,
    InFlight,
    IntervalName,
    LookbackDays,
    RequestRate,
    Retries,
    RetryDelays,
    Symbols,
    Timeout,
    When,
)
from storage.candles import CandleStore
from storage.layout import DataLayout
from tasks.ingest.clock import server_time
from tasks.ingest.outcome import IngestError, failure_message, unreachable_message
from tasks.ingest.progress import ingest_progress
from tasks.ingest.publish import log_outcomes, publish
from tasks.ingest.request import (
    DEFAULT_LOOKBACK_DAYS,
    check_start_before_now,
    client_settings,
    default_start_ms,
    validate_request,
)
from tasks.ingest.series import collect_outcomes, ingest_series
from tasks.poloniex.client import PoloniexClient
from tasks.poloniex.errors import PoloniexError
from tasks.poloniex.retry import RetryPolicy


@flow(name="ingest", validate_parameters=True, log_prints=False)
def ingest(
    symbols: Symbols = [DEFAULT_SYMBOL],  # noqa: B006 - Prefect shows the default in its form
    interval: IntervalName = DEFAULT_INTERVAL,
    start: When = None,
    end: When = None,
    base_url: BaseUrl = None,
    data_dir: DataDir = None,
    lookback_days: LookbackDays = DEFAULT_LOOKBACK_DAYS,
    retries: Retries = None,
    retry_delays: RetryDelays = None,
    max_requests_per_second: RequestRate = None,
    timeout: Timeout = None,
    max_in_flight: InFlight = None,
    progress: bool | None = None,
    repair: bool = False,
) -> list[dict[str, Any]]:
    """Append new closed candles of each symbol (in parallel) to the candle store.

    A new store starts at ``start`` or ``lookback_days`` before the server's now; an existing
    one resumes after its last candle, and backfills before its first when ``start`` is earlier.
    ``end`` defaults to the server's now. ``retries`` and ``retry_delays`` (seconds, jittered
    50%) apply to each page; ``base_url``, rate limit and timeout default to ``CRYPTOFLOW_*``
    settings.

    Args:
        symbols: Markets to ingest in parallel, e.g. BTC_USDT.
        interval: Candle interval (Poloniex names; MONTH_1 is not supported).
        start: First candle wanted (UTC): a new store starts there, an existing one is backfilled
            back to it; default lookback_days before the server's now.
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
        repair: Ask the server again for every hole inside the stored span (holes among the
            last 1000 candles are asked again on every run).
    """
    names, iv, start_ms, end_ms, url = validate_request(
        symbols, interval, start, end, base_url, lookback_days
    )
    settings = client_settings(
        url,
        max_requests_per_second=max_requests_per_second,
        timeout=timeout,
        max_in_flight=max_in_flight,
        retries=retries,
        retry_delays=retry_delays,
    )
    store = CandleStore(DataLayout.at(data_dir).candles)
    delays = settings.retry_delays or [0.0]
    clock = server_time.with_options(
        retries=min(2, settings.retries), retry_delay_seconds=delays[:2]
    )
    show = sys.stderr.isatty() if progress is None else progress
    with PoloniexClient.from_settings(settings) as client:
        try:
            now_ms = clock(client)
        except PoloniexError as exc:
            raise IngestError(unreachable_message(url, exc)) from exc
        check_start_before_now(start_ms, now_ms)
        with ingest_progress(show) as (on_plan, on_page):
            futures = ingest_series.map(
                client=unmapped(client),
                store=unmapped(store),
                symbol=names,
                interval=unmapped(iv),
                server_now_ms=unmapped(now_ms),
                start_ms=unmapped(start_ms),
                end_ms=unmapped(end_ms),
                default_start_ms=unmapped(default_start_ms(now_ms, lookback_days)),
                policy=unmapped(RetryPolicy.from_settings(settings)),
                on_page=unmapped(on_page),
                on_plan=unmapped(on_plan),
                in_flight=unmapped(settings.max_in_flight),
                repair=unmapped(repair),
            )
            outcomes = collect_outcomes(names, iv, futures, on_stop=client.interrupt)
    log_outcomes(outcomes)
    publish(outcomes, now_ms)
    failed = [o for o in outcomes if o.failed]
    if failed:
        raise IngestError(failure_message(failed, url), [asdict(o) for o in outcomes])
    return [asdict(o) for o in outcomes]
