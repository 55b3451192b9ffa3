"""The ingest progress bars: one :class:`~tasks.progress.TerminalProgress` bar per symbol on
stderr (pages done of pages planned, candles so far), fed by two callbacks."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from tasks.progress import TerminalProgress

Callback = Callable[[str, int], None]


@contextlib.contextmanager
def ingest_progress(enabled: bool) -> Iterator[tuple[Callback | None, Callback | None]]:
    """(on_plan, on_page) callbacks drawing a progress bar per symbol on stderr, or Nones."""
    if not enabled:
        yield None, None
        return
    counts: dict[str, int] = {}
    with TerminalProgress(True, unit="pages", eta=True, stderr=True) as bars:

        def on_plan(symbol: str, pages: int) -> None:
            counts[symbol] = 0
            bars.add(symbol, total=pages)

        def on_page(symbol: str, candles: int) -> None:
            counts[symbol] += candles
            bars.advance(symbol, status=f"{counts[symbol]:,} candles")

        yield on_plan, on_page
