"""Progress bars on a terminal: one rich bar per named item, a no-op when disabled; thread-safe.

Serves the train and sweep flows (epochs per model or setting: :meth:`TerminalProgress.update`)
and fits the ingest flow's per-symbol bars (pages planned, then one :meth:`advance` per page)::

    with TerminalProgress(show, unit="pages", eta=True, stderr=True) as bars:
        bars.add("BTC_USDT", total=12)
        bars.advance("BTC_USDT", status="1,500 candles")
"""

from __future__ import annotations

import sys
import threading
from typing import Any


class TerminalProgress:
    """One rich progress bar per name (a no-op when ``enabled`` is false).

    ``unit`` follows the ``done/total`` count (e.g. ``pages``), ``eta`` adds the time remaining,
    ``stderr`` draws on standard error instead of standard output.
    """

    def __init__(self, enabled: bool, *, unit: str = "", eta: bool = False,
                 stderr: bool = False) -> None:
        self._lock = threading.Lock()
        self._bars: dict[str, Any] = {}
        self._progress = None
        if enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )

            columns: list[Any] = [TextColumn("{task.description:<16}"), BarColumn(),
                                  MofNCompleteColumn()]
            if unit:
                columns.append(TextColumn(unit))
            columns.append(TextColumn("{task.fields[status]}"))
            if eta:
                columns.append(TimeRemainingColumn())
            self._progress = Progress(*columns, transient=False,
                                      console=Console(stderr=True) if stderr else None)

    @classmethod
    def on_terminal(cls, wanted: bool, **options: Any) -> TerminalProgress:
        """Bars when ``wanted`` and standard error is a terminal; a no-op otherwise."""
        return cls(wanted and sys.stderr.isatty(), **options)

    @property
    def enabled(self) -> bool:
        """Whether bars are drawn."""
        return self._progress is not None

    def __enter__(self) -> TerminalProgress:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def add(self, name: str, total: int, status: str = "") -> None:
        """Start (or reset) the bar of ``name`` at 0 of ``total``."""
        if self._progress is None:
            return
        with self._lock:
            if name in self._bars:
                self._progress.reset(self._bars[name], total=total, status=status)
            else:
                self._bars[name] = self._progress.add_task(name, total=total, status=status)

    def update(self, name: str, done: int, total: int, status: str = "") -> None:
        """Show ``done`` of ``total`` for ``name`` (its bar is made on first use)."""
        if self._progress is None:
            return
        with self._lock:
            if name not in self._bars:
                self._bars[name] = self._progress.add_task(name, total=total, status="")
            self._progress.update(self._bars[name], completed=done, total=total, status=status)

    def advance(self, name: str, steps: int = 1, status: str | None = None) -> None:
        """Move the bar of ``name`` (made by :meth:`add`) on by ``steps``; new status if given."""
        if self._progress is None:
            return
        fields = {} if status is None else {"status": status}
        with self._lock:
            self._progress.update(self._bars[name], advance=steps, **fields)
