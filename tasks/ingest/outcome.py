"""What an ingest did per series (``SeriesOutcome``), and the errors and messages when it failed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from storage.candles import KnownGap
from storage.schema import from_epoch_ms, to_ms

#: Holes listed by range in an outcome (the newest; the counts cover all).
MAX_RANGES = 10


class IngestError(RuntimeError):
    """An ingest that could not complete (the message says what failed and how to resume);
    ``outcomes`` holds every series' summary (as dicts), the ones that did complete too."""

    def __init__(self, message: str, outcomes: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.outcomes = outcomes or []

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (str(self), self.outcomes)


@dataclass
class SeriesOutcome:
    """What one ingest of one series did (small: goes into the flow result and the artifact)."""

    symbol: str
    interval: str
    added: int = 0
    first_new: str | None = None
    last_new: str | None = None
    stored_until: str | None = None
    resumed_from: str | None = None
    pages: int = 0
    batches_committed: int = 0
    gaps: int = 0  # holes strictly inside the stored span
    missing: int = 0  # candles missing in them
    known_gaps: int = 0  # holes the server confirmed (asked again, still empty)
    gap_ranges: list[dict[str, Any]] = field(default_factory=list)  # the newest MAX_RANGES
    error: str | None = None
    retried: bool = False  # the error came after the page's retries were spent

    @property
    def failed(self) -> bool:
        return self.error is not None


def iso(ms: int | pd.Timestamp | None) -> str | None:
    """ISO 8601 (UTC) of epoch ms or a timestamp; None stays None."""
    if ms is None:
        return None
    return (ms if isinstance(ms, pd.Timestamp) else from_epoch_ms(ms)).isoformat()


def gap_ranges(holes: pd.DataFrame, known: list[KnownGap]) -> list[dict[str, Any]]:
    """The newest ``MAX_RANGES`` holes (columns start, end, missing): start, end (ISO),
    missing, confirmed (the server said twice it has none of them)."""
    confirmed = {(g.start_ms, g.end_ms) for g in known}
    tail = holes.tail(MAX_RANGES)
    return [
        {"start": iso(int(a)), "end": iso(int(b)), "missing": int(n),
         "confirmed": (int(a), int(b)) in confirmed}
        for a, b, n in zip(to_ms(tail["start"]), to_ms(tail["end"]), tail["missing"], strict=True)
    ]  # fmt: skip


def gaps_text(o: SeriesOutcome) -> str:
    """``"2 gaps (130 missing; 1 confirmed by the server, 1 never asked again: --repair)"``."""
    text = f"{o.gaps} gaps ({o.missing} missing"
    if o.gaps:
        unasked = o.gaps - o.known_gaps
        text += f"; {o.known_gaps} confirmed empty by the server"
        if unasked:
            text += f", {unasked} not asked again yet: run with --repair"
    return text + ")"


def unreachable_message(url: str, exc: BaseException) -> str:
    """Why nothing was ingested when the server time could not be had, and what to try."""
    return (
        f"cannot get the server time from {url}: {exc}. Check --base-url "
        "(env CRYPTOFLOW_POLONIEX_URL); without network access, start "
        "`cryptoflow replay --data FILE` and pass the URL it prints as --base-url. "
        "Nothing was written."
    )


def failure_message(failed: list[SeriesOutcome], base_url: str) -> str:
    """One message for every series that failed, with what was committed and how to resume."""
    parts = [
        f"{o.symbol} {o.interval} failed{' after retries' if o.retried else ''}: {o.error} "
        f"(committed up to {o.stored_until or 'nothing'})"
        for o in failed
    ]
    return (
        "ingest failed: "
        + "; ".join(parts)
        + f". Source: {base_url}. Every committed page is kept: re-run the same ingest to "
        "resume after the stored end."
    )
