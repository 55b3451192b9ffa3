"""The ``ingest-series`` task: fetch one series (backfill, holes asked again, new candles) and
commit it batch by batch; its outcome, with the holes the server confirmed."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from storage.candles import CandleStore, KnownGap
from storage.errors import BadInputError
from storage.schema import Interval, to_epoch_ms, to_ms
from tasks.ingest.outcome import SeriesOutcome, gap_ranges, iso
from tasks.ingest.writer import series_writer
from tasks.poloniex.client import PoloniexClient
from tasks.poloniex.errors import FetchInterrupted, RetriesExhaustedError
from tasks.poloniex.fetch import PageBatch, fetch_pages, valid_prefix
from tasks.poloniex.planning import RECHECK_CANDLES, plan_ingest
from tasks.poloniex.retry import RetryPolicy

#: How long a stopped ingest waits for its series to commit and release the lock (seconds).
STOP_GRACE_S = 30.0


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
    policy: RetryPolicy | None = None,
    on_page: Callable[[str, int], None] | None = None,
    on_plan: Callable[[str, int], None] | None = None,
    in_flight: int = 1,
    repair: bool = False,
) -> SeriesOutcome:
    """Fetch one series to ``end_ms`` (or now) and commit it batch by batch.

    Holds the series' writer slot on the Prefect server (one writer across hosts,
    :mod:`tasks.ingest.writer`) and the store's per-series lock throughout. The batches
    (:func:`plan_ingest`): the range before the stored first candle when ``start_ms`` is
    earlier, the store's holes asked again (all with ``repair``, else those in the last
    ``RECHECK_CANDLES``), then the new candles.
    Each batch is fetched by :func:`fetch_pages` and committed with one ``store.append`` before
    the next starts; when a fetch fails for good or is stopped, the pages it did fetch are
    committed first. Holes the server confirmed are recorded as known gaps.
    """
    outcome = SeriesOutcome(symbol, interval.value)
    # One writer per series: across hosts (the Prefect server's slot), then on this host.
    with series_writer(store.exchange, symbol, interval), store.lock(symbol, interval):
        stop = min(server_now_ms, end_ms if end_ms is not None else server_now_ms)
        batches = plan_ingest(
            _stored_span(store, symbol, interval), interval, start_ms, stop, default_start_ms,
            _holes_to_check(store, symbol, interval, repair),
        )  # fmt: skip
        new = [b.pages[0][0] for b in batches if b.kind == "new"]
        outcome.resumed_from = iso(new[0]) if new else None
        if on_plan is not None:
            on_plan(symbol, sum(len(b.pages) for b in batches))
        confirmed: list[tuple[int, int]] = []
        for planned in batches:
            batch = PageBatch(planned.pages, tail_open=planned.tail_open)
            try:
                fetch_pages(client, symbol, interval, batch, on_page, in_flight, policy)
            except Exception as exc:
                outcome.error = _describe(exc)
                outcome.retried = isinstance(exc, RetriesExhaustedError)
            _commit(store, symbol, interval, batch, server_now_ms, outcome)
            confirmed.extend(batch.confirmed)
            if outcome.failed:
                break
        outcome.stored_until = iso(store.last_open_time(symbol, interval))
        holes, known = store.record_known_gaps(symbol, interval, confirmed, server_now_ms)
        _account_gaps(outcome, holes, known)
    return outcome


def _stored_span(store: CandleStore, symbol: str, interval: Interval) -> tuple[int, int] | None:
    """(first, last) stored open time in ms, or None for an empty series."""
    last = store.last_open_time(symbol, interval)
    if last is None:
        return None
    first = store.first_open_time(symbol, interval)
    return to_epoch_ms(first if first is not None else last), to_epoch_ms(last)


def _holes_to_check(
    store: CandleStore, symbol: str, interval: Interval, repair: bool
) -> list[tuple[int, int]]:
    """The holes to ask for again: all with ``repair``, else those near the stored end."""
    holes = store.gaps(symbol, interval)
    if holes.empty:
        return []
    starts, ends = to_ms(holes["start"]), to_ms(holes["end"])
    if not repair:
        last = to_epoch_ms(store.last_open_time(symbol, interval))
        near = ends >= last - RECHECK_CANDLES * interval.ms
        starts, ends = starts[near], ends[near]
    return [(int(a), int(b)) for a, b in zip(starts, ends, strict=True)]


def _describe(exc: BaseException) -> str:
    """One line for the outcome: the error's own message, its kind when it adds something."""
    if isinstance(exc, FetchInterrupted | RetriesExhaustedError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def _commit(
    store: CandleStore,
    symbol: str,
    interval: Interval,
    batch: PageBatch,
    server_now_ms: int,
    outcome: SeriesOutcome,
) -> None:
    """Append the fetched pages of ``batch`` and account for them in ``outcome``."""
    outcome.pages += len(batch.fetched) + batch.asked_again
    if not batch.fetched:
        return
    try:
        result = store.append(symbol, interval, batch.frame(), server_now_ms=server_now_ms)
    except BadInputError:  # a row the page checks let through: keep the pages before it
        batch.fetched, refused = valid_prefix(batch.fetched, interval)
        outcome.error = outcome.error or f"a page the store refuses: {refused}"
        if not batch.fetched:
            return
        result = store.append(symbol, interval, batch.frame(), server_now_ms=server_now_ms)
    outcome.batches_committed += 1
    outcome.added += result.added
    if result.first_new is not None:
        first = iso(result.first_new)
        outcome.first_new = first if outcome.first_new is None else min(outcome.first_new, first)
    if result.last_new is not None:
        last = iso(result.last_new)
        outcome.last_new = last if outcome.last_new is None else max(outcome.last_new, last)


def _account_gaps(outcome: SeriesOutcome, holes: pd.DataFrame, known: list[KnownGap]) -> None:
    """The store's holes in ``outcome``: count, candles missing, how many the server confirmed."""
    outcome.gaps, outcome.missing = len(holes), int(holes["missing"].sum())
    outcome.known_gaps = len(known)
    outcome.gap_ranges = gap_ranges(holes, known)


def collect_outcomes(
    symbols: list[str],
    interval: Interval,
    futures: Iterable[Any],
    on_stop: Callable[[], None] | None = None,
) -> list[SeriesOutcome]:
    """The outcome of each mapped :func:`ingest_series` run, a failed one for a task that raised
    (e.g. the store lock is held by another ingest).

    Interrupted (Ctrl-C, SIGTERM: a ``BaseException`` while waiting), it calls ``on_stop`` (the
    client's ``interrupt``: every wait ends), gives the series up to ``STOP_GRACE_S`` to commit
    what they fetched and release their locks, then re-raises.
    """
    futures = list(futures)
    outcomes: list[SeriesOutcome] = []
    try:
        for name, future in zip(symbols, futures, strict=True):
            try:
                outcomes.append(future.result())
            except Exception as exc:
                outcomes.append(SeriesOutcome(name, interval.value, error=f"{exc}"))
    except BaseException:
        if on_stop is not None:
            on_stop()
        for future in futures:
            future.wait(STOP_GRACE_S)
        raise
    return outcomes
