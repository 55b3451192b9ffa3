"""What an ingest did per series (``SeriesOutcome``), and the errors and messages when it failed."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from storage.schema import from_epoch_ms


class IngestError(RuntimeError):
    """An ingest that could not complete (the message says what failed and how to resume)."""


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
    gaps: int = 0
    missing: int = 0
    error: str | None = None

    @property
    def failed(self) -> bool:
        return self.error is not None


def iso(ms: int | pd.Timestamp | None) -> str | None:
    """ISO 8601 (UTC) of epoch ms or a timestamp; None stays None."""
    if ms is None:
        return None
    return (ms if isinstance(ms, pd.Timestamp) else from_epoch_ms(ms)).isoformat()


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
        f"{o.symbol} {o.interval} failed after retries: {o.error} "
        f"(committed up to {o.stored_until or 'nothing'})"
        for o in failed
    ]
    return (
        "ingest failed: "
        + "; ".join(parts)
        + f". Source: {base_url}. Every committed page is kept: re-run the same ingest to "
        "resume after the stored end."
    )
