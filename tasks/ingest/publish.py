"""Publishing an ingest: the ``ingest-summary`` table artifact, one ``cryptoflow.candles.appended``
event per series that grew, and one log line per series."""

from __future__ import annotations

from dataclasses import asdict

from prefect import get_run_logger
from prefect.artifacts import create_table_artifact
from prefect.events import emit_event

from tasks.ingest.outcome import SeriesOutcome, gaps_text, iso

EVENT_APPENDED = "cryptoflow.candles.appended"
ARTIFACT_KEY = "ingest-summary"


def summary_rows(outcomes: list[SeriesOutcome]) -> list[dict[str, object]]:
    """The artifact's table: one row per series."""
    return [
        {
            "symbol": o.symbol,
            "interval": o.interval,
            "candles added": o.added,
            "first new candle": o.first_new or "",
            "last new candle": o.last_new or "",
            "stored until": o.stored_until or "",
            "gaps": gaps_text(o),
            "status": "failed: " + o.error if o.error else "ok",
        }
        for o in outcomes
    ]


def publish(outcomes: list[SeriesOutcome], server_now_ms: int) -> None:
    """Table artifact of the run and one ``cryptoflow.candles.appended`` event per grown series."""
    create_table_artifact(
        table=summary_rows(outcomes),
        key=ARTIFACT_KEY,
        description=f"Candles appended (server time {iso(server_now_ms)})",
    )
    for o in outcomes:
        if o.added:
            emit_event(
                event=EVENT_APPENDED,
                resource={
                    "prefect.resource.id": f"cryptoflow.candles.{o.symbol}.{o.interval}",
                    "prefect.resource.name": f"{o.symbol} {o.interval} candles",
                },
                payload={k: v for k, v in asdict(o).items() if k != "error"},
            )


def log_outcomes(outcomes: list[SeriesOutcome]) -> None:
    """One line per series in the flow run's log."""
    logger = get_run_logger()
    for o in outcomes:
        logger.info(
            "%s %s: %d candles added (%s .. %s), stored until %s, %s%s",
            o.symbol, o.interval, o.added, o.first_new, o.last_new, o.stored_until or "nothing",
            gaps_text(o), f"; failed: {o.error}" if o.error else "",
        )  # fmt: skip
