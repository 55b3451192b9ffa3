"""Planning a fetch: page windows, whole-month commit batches and where to resume."""

from __future__ import annotations

import numpy as np
import pandas as pd

from storage.schema import Interval, to_epoch_ms
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
