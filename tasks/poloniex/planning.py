"""Planning a fetch: page windows, whole-month commit batches, where to resume, what to
backfill before the stored first candle, and which holes to ask for again."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd

from storage.schema import Interval, from_epoch_ms, to_epoch_ms
from tasks.poloniex.pages import MAX_LIMIT, check_limit


def page_ranges(
    start_ms: int, end_ms: int, interval: Interval | str, limit: int = MAX_LIMIT
) -> list[tuple[int, int]]:
    """Inclusive ``(start, end)`` ms windows of at most ``limit`` candles covering the range.

    ``start_ms`` is rounded up to the interval grid; each window starts on the grid.
    """
    step = Interval.parse(interval).ms
    check_limit(limit)
    first = -(-int(start_ms) // step) * step
    span = step * limit
    return [(s, min(s + span - 1, int(end_ms))) for s in range(first, int(end_ms) + 1, span)]


def month_starts_ms(start_ms: int, end_ms: int) -> list[int]:
    """Epoch ms of each UTC month start strictly after ``start_ms`` and not after ``end_ms``."""
    first = np.datetime64(int(start_ms), "ms").astype("datetime64[M]") + 1
    last = np.datetime64(int(end_ms), "ms").astype("datetime64[M]")
    if last < first:
        return []
    months = np.arange(first, last + 1).astype("datetime64[ms]").astype(np.int64)
    return [int(m) for m in months]


def plan_batches(
    start_ms: int,
    end_ms: int,
    interval: Interval | str,
    limit: int = MAX_LIMIT,
    min_candles: int = 5_000,
) -> list[list[tuple[int, int]]]:
    """Page windows of ``[start_ms, end_ms]`` grouped into commit batches of whole UTC months.

    No page crosses a month boundary, so a batch's append rewrites only its own months; a batch
    spans as many whole months as it takes to hold ``min_candles`` (one month at 5 minutes,
    several at an hour). Returns batches (b,) of pages (p_i,) of inclusive ``(start, end)`` ms.
    """
    iv = Interval.parse(interval)
    if end_ms < start_ms:
        return []
    edges = [int(start_ms), *month_starts_ms(start_ms, end_ms), int(end_ms) + 1]
    batches: list[list[tuple[int, int]]] = []
    current: list[tuple[int, int]] = []
    span = 0
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        pages = page_ranges(lo, hi - 1, iv, limit) if hi - 1 >= lo else []
        current.extend(pages)
        span += (hi - lo) // iv.ms
        if span >= min_candles:
            batches.append(current)
            current, span = [], 0
    if current:
        batches.append(current)
    return [b for b in batches if b]


def resume_start_ms(
    last_open: pd.Timestamp | None, interval: Interval, start_ms: int | None, default_ms: int
) -> int:
    """Where to start fetching: after the stored end (not before ``start_ms``), else ``start_ms``,
    else ``default_ms`` (all epoch ms)."""
    if last_open is not None:
        after = to_epoch_ms(last_open) + interval.ms
        return after if start_ms is None else max(after, int(start_ms))
    return default_ms if start_ms is None else int(start_ms)


#: Holes ending within this many candles of the stored end are asked for again on every run.
RECHECK_CANDLES = 1_000
#: Pages of holes asked for again per commit batch.
RECHECK_PAGES_PER_BATCH = 20



class Batch(NamedTuple):
    """One commit batch: its pages, whether it reaches the present, and why it is fetched."""

    pages: list[tuple[int, int]]
    tail_open: bool
    kind: str  # "backfill" (before the stored first candle), "recheck" (holes) or "new"


def recheck_pages(
    holes: list[tuple[int, int]], interval: Interval | str, limit: int = MAX_LIMIT
) -> list[tuple[int, int]]:
    """Page windows covering the holes (inclusive first/last missing open time), nearby holes
    sharing a page: at most one page per ``limit`` candles of span, none for no holes."""
    step = Interval.parse(interval).ms
    pages: list[tuple[int, int]] = []
    for lo, hi in sorted(holes):
        for start, end in page_ranges(lo, hi, interval, limit):
            if pages and end - pages[-1][0] < limit * step:
                pages[-1] = (pages[-1][0], max(pages[-1][1], end))
            else:
                pages.append((start, end))
    return pages


def plan_ingest(
    stored: tuple[int, int] | None,
    interval: Interval,
    start_ms: int | None,
    stop_ms: int,
    default_ms: int,
    holes: list[tuple[int, int]] | None = None,
) -> list[Batch]:
    """The commit batches of one ingest, in the order to fetch them.

    ``stored`` is (first, last) stored open time or None. First the backfill before the stored
    first candle when ``start_ms`` is earlier (newest batch first, so an interrupted backfill
    leaves no hole: the next run backfills the rest), then the ``holes`` asked again, then the
    new candles after the stored end (the last batch ``tail_open``: it reaches the present).
    """
    iv = Interval.parse(interval)
    batches: list[Batch] = []
    if stored is None:
        begin = default_ms if start_ms is None else int(start_ms)
    else:
        first, last = stored
        if start_ms is not None and start_ms < first:
            before = plan_batches(int(start_ms), min(first - iv.ms, stop_ms), iv)
            batches.extend(Batch(pages, False, "backfill") for pages in reversed(before))
        pages = recheck_pages(holes or [], iv)
        for i in range(0, len(pages), RECHECK_PAGES_PER_BATCH):
            batches.append(Batch(pages[i : i + RECHECK_PAGES_PER_BATCH], False, "recheck"))
        begin = resume_start_ms(from_epoch_ms(last), iv, start_ms, default_ms)
    after = plan_batches(begin, stop_ms, iv)
    batches.extend(Batch(pages, i == len(after) - 1, "new") for i, pages in enumerate(after))
    return batches
