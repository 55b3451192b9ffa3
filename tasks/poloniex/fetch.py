"""The ``fetch-pages`` task: a commit batch's pages, in order, each retried on its own, each
short page asked again before it is believed."""

from __future__ import annotations

import functools
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from storage.candles.validate import validate_candles
from storage.errors import BadInputError
from storage.schema import Interval
from tasks.poloniex.client import PoloniexClient
from tasks.poloniex.holes import missing_times, runs
from tasks.poloniex.pages import candles_frame
from tasks.poloniex.retry import RetryPolicy, with_retries

__all__ = ["PageBatch", "fetch_page", "fetch_pages", "valid_prefix"]
Page = dict[str, np.ndarray]


class PageBatch:
    """Pages of one commit batch, the ones fetched so far, and the holes the server confirmed.

    ``tail_open``: the batch's last page reaches the present with nothing stored after it, so
    missing times after its last row are not asked again (see :func:`missing_times`).
    ``confirmed`` lists inclusive ``(first, last)`` open-time runs a page lacked twice.
    """

    def __init__(self, pages: list[tuple[int, int]], *, tail_open: bool = False) -> None:
        self.pages = list(pages)
        self.tail_open = tail_open
        self.fetched: list[Page] = []
        self.confirmed: list[tuple[int, int]] = []
        self.asked_again = 0

    @property
    def remaining(self) -> list[tuple[int, int]]:
        """Pages not fetched yet, in order."""
        return self.pages[len(self.fetched) :]

    def frame(self) -> pd.DataFrame:
        """The fetched pages as one candle-schema frame (n rows)."""
        return candles_frame(self.fetched)


def valid_prefix(pages: list[Page], iv: Interval) -> tuple[list[Page], BadInputError | None]:
    """The pages (k <= n) before the first one the store's own validation refuses, and why.

    The page parser already applies the store's rules (cheaply, in numpy); this is the safety
    net when a batch's append refuses it anyway: what was valid is still committed.
    """
    for i, page in enumerate(pages):
        try:
            validate_candles(candles_frame([page]), iv)
        except BadInputError as exc:
            return pages[:i], exc
    return pages, None


def fetch_page(
    client: PoloniexClient,
    symbol: str,
    iv: Interval,
    window: tuple[int, int],
    policy: RetryPolicy,
    tail_open: bool = False,
    abandon: threading.Event | None = None,
) -> tuple[Page, list[tuple[int, int]], bool]:
    """One page, retried on its own; a page lacking times of its range is asked once more.

    Returns (the page's columns (n,), the runs of times it still lacked when asked again, i.e.
    holes the server confirms, whether it was asked again). ``abandon`` set: stop retrying.
    """
    what = f"{symbol} {iv.value} page {window[0]}..{window[1]}"

    def get() -> Page:
        call = functools.partial(client.fetch_candle_arrays, symbol, iv, *window)
        return with_retries(call, policy, client, what, abandon)

    page = get()
    missing = missing_times(page["open_time"], window, iv.ms, tail_open=tail_open)
    if not len(missing):
        return page, [], False
    again = get()
    if len(again["open_time"]) >= len(page["open_time"]):
        page = again
    missing = missing_times(page["open_time"], window, iv.ms, tail_open=tail_open)
    return page, runs(missing, iv.ms), True


@task(
    name="fetch-pages",
    retries=0,  # each page retries on its own inside (see the flow's docstring for why)
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
    policy: RetryPolicy | None = None,
) -> int:
    """Fetch the batch's remaining pages, in order, into ``batch``; return candles fetched.

    Each page is retried on its own (``policy``: tries and delays per page, the server's
    Retry-After up to the client's cap) and asked again when it lacks times that later data
    follows. Up to ``in_flight`` pages are fetched at once (over the one keep-alive client,
    still under its rate limit); pages are kept in order, and on the first page that fails for
    good nothing after it is kept, so the pages before it can be committed.
    """
    policy = policy or RetryPolicy()
    last = len(batch.pages) - 1
    abandon = threading.Event()

    def one(index: int) -> tuple[Page, list[tuple[int, int]], bool]:
        tail = batch.tail_open and index == last
        return fetch_page(client, symbol, interval, batch.pages[index], policy, tail, abandon)

    def keep(result: tuple[Page, list[tuple[int, int]], bool]) -> None:
        page, confirmed, asked_again = result
        batch.fetched.append(page)
        batch.confirmed.extend(confirmed)
        batch.asked_again += asked_again
        if on_page is not None:
            on_page(symbol, len(page["open_time"]))

    todo = iter(range(len(batch.fetched), len(batch.pages)))
    if in_flight <= 1:
        for index in todo:
            keep(one(index))
        return sum(len(p["open_time"]) for p in batch.fetched)
    with ThreadPoolExecutor(in_flight, thread_name_prefix="fetch-page") as pool:
        pending: deque[Future[tuple[Page, list[tuple[int, int]], bool]]] = deque()

        def fill() -> None:
            while len(pending) < in_flight:
                index = next(todo, None)
                if index is None:
                    return
                pending.append(pool.submit(one, index))

        fill()
        while pending:
            try:
                result = pending.popleft().result()
            except BaseException:
                abandon.set()  # pages still in flight stop retrying
                for later in pending:
                    later.cancel()
                raise
            keep(result)
            fill()
    return sum(len(p["open_time"]) for p in batch.fetched)
