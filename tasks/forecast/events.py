"""The live-forecast events: their names (one place; deployment triggers match on them), the
market resource they concern, and emitting one."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: The champion's live skill fell below the threshold over a full window of issues. Payload:
#: symbol, interval (a trigger passes them to the pipeline), model, run_id, epoch, skill, n,
#: issues, window, threshold, last_scored.
EVENT_DEGRADED = "cryptoflow.forecast.degraded"


def forecast_resource(symbol: str, interval: str) -> dict[str, str]:
    """The Prefect resource of a market's live forecasts."""
    return {
        "prefect.resource.id": f"cryptoflow.forecast.{symbol}.{interval}",
        "prefect.resource.name": f"{symbol} {interval} live forecasts",
    }


def emit_degraded(payload: Mapping[str, Any]) -> Any:
    """Emit ``cryptoflow.forecast.degraded`` for the market of ``payload``; the Event (None
    when Prefect's events are off)."""
    from prefect.events import emit_event

    return emit_event(
        event=EVENT_DEGRADED,
        resource=forecast_resource(str(payload["symbol"]), str(payload["interval"])),
        payload=dict(payload),
    )
