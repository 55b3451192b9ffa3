"""The ``fetch-pages`` task: a commit batch's pages, in order, retried from the page that failed."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np
import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from storage.schema import Interval
from storage.settings import DEFAULT_RETRIES, DEFAULT_RETRY_DELAYS_S
from tasks.poloniex.client import PoloniexClient
from tasks.poloniex.errors import is_retryable
from tasks.poloniex.pages import candles_frame


class PageBatch:
    """Pages of one commit batch and the ones fetched so far (kept across Prefect retries).

    A plain class on purpose: Prefect hands the same object to every retry of
    :func:`fetch_pages`, so a retry resumes at the page that failed instead of starting over.
    """

    def __init__(self, pages: list[tuple[int, int]]) -> None:
        self.pages = list(pages)
        self.fetched: list[dict[str, np.ndarray]] = []

    @property
    def remaining(self) -> list[tuple[int, int]]:
        """Pages not fetched yet, in order."""
        return self.pages[len(self.fetched) :]

    def frame(self) -> pd.DataFrame:
        """The fetched pages as one candle-schema frame (n rows)."""
        return candles_frame(self.fetched)


def retry_unless_permanent(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect ``retry_condition_fn``: retry every failure except a :class:`PermanentError`."""
    exc = state.data if isinstance(getattr(state, "data", None), BaseException) else None
    if exc is None:
        try:
            state.result(raise_on_failure=True)
        except BaseException as raised:  # noqa: BLE001 - we only classify it
            exc = raised
    return is_retryable(exc)


@task(
    name="fetch-pages",
    retries=DEFAULT_RETRIES,
    retry_delay_seconds=list(DEFAULT_RETRY_DELAYS_S),
    retry_jitter_factor=0.5,
    retry_condition_fn=retry_unless_permanent,
    cache_policy=NO_CACHE,
    persist_result=False,
)
def fetch_pages(
    client: PoloniexClient,
    symbol: str,
    interval: Interval,
    batch: PageBatch,
    on_page: Callable[[str, int], None] | None = None,
    in_flight: int = 1,
) -> int:
    """Fetch the batch's remaining pages, in order, into ``batch``; return candles fetched.

    Up to ``in_flight`` requests run at once (over the one keep-alive client, still under its
    rate limit) to hide a remote API's latency (on loopback one at a time is as fast, see
    ``bench/ingest.py``); pages are kept in order, and on the
    first failure nothing after the failed page is kept. The retried unit is therefore the page
    that failed: earlier pages of the batch stay in ``batch`` across Prefect retries.
    """
    if in_flight <= 1:
        for start_ms, end_ms in batch.remaining:
            page = client.fetch_candle_arrays(symbol, interval, start_ms, end_ms)
            batch.fetched.append(page)
            if on_page is not None:
                on_page(symbol, len(page["open_time"]))
        return sum(len(p["open_time"]) for p in batch.fetched)
    remaining = iter(batch.remaining)
    with ThreadPoolExecutor(max(1, in_flight), thread_name_prefix="fetch-page") as pool:
        pending: deque[Future[dict[str, np.ndarray]]] = deque()

        def fill() -> None:
            while len(pending) < max(1, in_flight):
                window = next(remaining, None)
                if window is None:
                    return
                pending.append(pool.submit(client.fetch_candle_arrays, symbol, interval, *window))

        fill()
        while pending:
            try:
                page = pending.popleft().result()
            except BaseException:
                for later in pending:
                    later.cancel()
                raise
            batch.fetched.append(page)
            if on_page is not None:
                on_page(symbol, len(page["open_time"]))
            fill()
    return sum(len(p["open_time"]) for p in batch.fetched)
