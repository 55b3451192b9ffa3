"""The ingest progress bar: one rich bar per symbol on stderr, fed by two callbacks."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

Callback = Callable[[str, int], None]


@contextlib.contextmanager
def ingest_progress(enabled: bool) -> Iterator[tuple[Callback | None, Callback | None]]:
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
