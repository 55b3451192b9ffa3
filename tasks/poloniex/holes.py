"""Holes in a page: the open times a page's range should hold but it lacks, and their runs."""

from __future__ import annotations

import numpy as np


def grid(start_ms: int, end_ms: int, step: int) -> np.ndarray:
    """Open times (n,) int64 on the ``step`` grid inside ``[start_ms, end_ms]``."""
    first = -(-int(start_ms) // step) * step
    return np.arange(first, int(end_ms) + 1, step, dtype=np.int64)


def missing_times(
    open_ms: np.ndarray, window: tuple[int, int], step: int, *, tail_open: bool
) -> np.ndarray:
    """Open times (m,) of ``window`` that the page's ``open_ms`` (n,) lacks.

    With ``tail_open`` (the last page before the present, nothing stored after it), the times
    after the page's last row are not counted: they may simply not be there yet, and the next
    run asks for them anyway. Everything else missing is followed by data (later in the page,
    a later page, or the store) and worth asking again.
    """
    expected = grid(window[0], window[1], step)
    if tail_open:
        expected = expected[expected <= open_ms[-1]] if len(open_ms) else expected[:0]
    return np.setdiff1d(expected, open_ms, assume_unique=True)


def runs(times: np.ndarray, step: int) -> list[tuple[int, int]]:
    """Consecutive runs of ascending grid times (n,) as inclusive ``(first, last)`` pairs."""
    if len(times) == 0:
        return []
    breaks = np.flatnonzero(np.diff(times) != step) + 1
    starts = np.r_[0, breaks]
    ends = np.r_[breaks - 1, len(times) - 1]
    return [(int(times[a]), int(times[b])) for a, b in zip(starts, ends, strict=True)]
