"""The report's "live since promotion" section: when the reported run is its market's scored
champion, its live scores (since promotion and over the last N issues) and their chart.

Caching: live scores move with every candle, so a report of the current champion carries a
token of its market's score state (the last scored issue and the issues since promotion) in
its input fingerprint (:func:`live_token`): such a report is made again once new forecasts
were scored, and reused while nothing changed. Reports of any other run are untouched.
"""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from storage.champions import ChampionRegistry
from storage.layout import DataLayout
from storage.schema import Interval, validate_symbol
from storage.scores import ScoreStore
from tasks.forecast.live import live_view
from tasks.forecast.publish import live_chart_png, live_table

#: The live forecasts' champions are chosen under this protocol only.
LIVE_PROTOCOL = "honest"


def _market(symbol: Any, interval: Any) -> tuple[str, str] | None:
    """(symbol, interval) when both are valid market names, else None (older runs)."""
    try:
        return validate_symbol(str(symbol)), Interval.parse(str(interval)).value
    except ValueError:
        return None


def champion_market(data_dir: str, run_id: str) -> tuple[str, str] | None:
    """The market (symbol, interval) of which run ``run_id`` is the current honest champion,
    or None (not a champion, demoted, or a record without a valid market)."""
    registry = ChampionRegistry(DataLayout.at(data_dir).reports)
    record = next((r for r in reversed(registry.records()) if r.get("run_id") == run_id), None)
    if record is None or record.get("protocol") != LIVE_PROTOCOL:
        return None
    market = _market(record.get("symbol"), record.get("interval"))
    if market is None:
        return None
    current = registry.current(LIVE_PROTOCOL, *market)
    return market if current is not None and current.get("run_id") == run_id else None


def live_token(data_dir: str, run_id: str) -> str | None:
    """``live/<last scored ms>/<issues>`` of the run's market when the run is its current
    honest champion and has live scores, else None (nothing to add to the fingerprint)."""
    market = champion_market(data_dir, run_id)
    if market is None:
        return None
    state = ScoreStore(DataLayout.at(data_dir).scores).read_state(*market)
    if state.champion is None or state.champion.run_id != run_id or not state.issues:
        return None
    return f"live/{state.last_scored_ms}/{state.issues}"


def live_section(data_dir: str, run_id: str) -> dict[str, Any] | None:
    """The section's content: ``{"summary", "rows", "png"}`` (the JSON-able live summary,
    its table rows, the chart's PNG bytes) when the run is its market's current champion and
    has live scores (the same rule as :func:`live_token`), else None."""
    market = champion_market(data_dir, run_id)
    if market is None:
        return None
    view = live_view(data_dir, *market, run_id)
    if view is None:
        return None
    summary = {k: v for k, v in view.to_dict().items()
               if k not in ("alert", "message", "scored_issues", "scored_rows",
                            "pending_issues")}
    return {"summary": summary, "rows": live_table(view), "png": live_chart_png(view)}


@task(name="live-section", cache_policy=NO_CACHE)
def live_section_task(data_dir: str, run_id: str) -> dict[str, Any] | None:
    """The "live since promotion" section of the run's report, or None."""
    return live_section(data_dir, run_id)
