"""The ``ingest-series`` task: fetch one series from its stored end and commit it batch by batch."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from storage.candles import CandleStore
from storage.schema import Interval
from tasks.ingest.outcome import SeriesOutcome, iso
from tasks.poloniex.client import PoloniexClient
from tasks.poloniex.fetch import PageBatch, fetch_pages
from tasks.poloniex.planning import plan_batches, resume_start_ms


@task(name="ingest-series", cache_policy=NO_CACHE, persist_result=False)
def ingest_series(
    client: PoloniexClient,
    store: CandleStore,
    symbol: str,
    interval: Interval,
    server_now_ms: int,
    start_ms: int | None,
    end_ms: int | None,
    default_start_ms: int,
    fetch: Any = None,
    on_page: Callable[[str, int], None] | None = None,
    on_plan: Callable[[str, int], None] | None = None,
    in_flight: int = 1,
) -> SeriesOutcome:
    """Fetch one series from the stored end to ``end_ms`` (or now) and commit it batch by batch.

    Holds the store's per-series lock throughout. Each batch (whole months, see
    :func:`plan_batches`) is fetched by ``fetch`` (:func:`fetch_pages` with the run's retry
    options) and committed with one ``store.append`` before the next starts; when a fetch fails
    for good, the pages it did fetch are committed first, so a re-run resumes right there.
    """
    fetch = fetch or fetch_pages
    outcome = SeriesOutcome(symbol, interval.value)
    with store.lock(symbol, interval):
        last = store.last_open_time(symbol, interval)
        begin = resume_start_ms(last, interval, start_ms, default_start_ms)
        stop = min(server_now_ms, end_ms if end_ms is not None else server_now_ms)
        batches = plan_batches(begin, stop, interval)
        outcome.resumed_from = iso(begin)
        if on_plan is not None:
            on_plan(symbol, sum(len(b) for b in batches))
        for pages in batches:
            batch = PageBatch(pages)
            try:
                fetch(client, symbol, interval, batch, on_page, in_flight)
            except Exception as exc:
                outcome.error = f"{type(exc).__name__}: {exc}"
            _commit(store, symbol, interval, batch, server_now_ms, outcome)
            if outcome.failed:
                break
        final = store.last_open_time(symbol, interval)
        outcome.stored_until = iso(final)
        gaps = store.gaps(symbol, interval)
        outcome.gaps, outcome.missing = len(gaps), int(gaps["missing"].sum())
    return outcome


def _commit(
    store: CandleStore,
    symbol: str,
    interval: Interval,
    batch: PageBatch,
    server_now_ms: int,
    outcome: SeriesOutcome,
) -> None:
    """Append the fetched pages of ``batch`` and account for them in ``outcome``."""
    outcome.pages += len(batch.fetched)
    if not batch.fetched:
        return
    result = store.append(symbol, interval, batch.frame(), server_now_ms=server_now_ms)
    outcome.batches_committed += 1
    outcome.added += result.added
    if result.first_new is not None and outcome.first_new is None:
        outcome.first_new = iso(result.first_new)
    if result.last_new is not None:
        outcome.last_new = iso(result.last_new)


def collect_outcomes(
    symbols: list[str], interval: Interval, futures: Iterable[Any]
) -> list[SeriesOutcome]:
    """The outcome of each mapped :func:`ingest_series` run, a failed one for a task that raised
    (e.g. the store lock is held by another ingest)."""
    outcomes: list[SeriesOutcome] = []
    for name, future in zip(symbols, futures, strict=True):
        try:
            outcomes.append(future.result())
        except Exception as exc:
            outcomes.append(SeriesOutcome(name, interval.value, error=f"{exc}"))
    return outcomes
