"""The Prefect tasks of a forecast: issue it (read the stores, predict), then store its rows."""

from __future__ import annotations

import json
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from storage.candles import StoreLockedError
from storage.forecasts import ForecastStore
from storage.layout import DataLayout
from tasks.forecast.issue import issue_forecast


def retry_on_io(task: Any, task_run: Any, state: Any) -> bool:
    """Retry an ``OSError`` (a busy disk, a lock held by another writer), nothing else: bad
    input, a corrupt store and a missing checkpoint do not pass by trying again."""
    try:
        state.result(raise_on_failure=True)
    except (StoreLockedError, TimeoutError):
        return True
    except FileNotFoundError:
        return False
    except OSError:
        return True
    except Exception:  # noqa: BLE001 - anything else is not I/O
        return False
    return False


@task(name="issue-forecast", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[2, 5],
      retry_condition_fn=retry_on_io)
def forecast_task(symbol: str, interval: str, data_dir: str) -> list[dict[str, Any]]:
    """The champion's and persistence's forecast rows of the newest window (2 * K dicts)."""
    issue = issue_forecast(data_dir, symbol, interval)
    get_run_logger().info(
        "%s %s: %s (run %s, epoch %s) forecast %d candles after %s",
        symbol, interval, issue.champion["model"], issue.champion["run_id"],
        issue.champion["epoch"], issue.rows["step"].max(), issue.issued_at.isoformat(),
    )
    # JSON-safe records (ISO times, null epochs): small, and nothing Prefect must pickle
    return json.loads(issue.rows.to_json(orient="records", date_format="iso", date_unit="ms"))


@task(name="store-forecasts", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[2, 5],
      retry_condition_fn=retry_on_io)
def store_forecasts_task(
    symbol: str, interval: str, data_dir: str, rows: list[dict[str, Any]]
) -> dict[str, Any]:
    """Store the rows of issues not stored yet: ``{"added", "skipped_issues", "paths"}``."""
    import pandas as pd

    result = ForecastStore(DataLayout.at(data_dir).forecasts).write(
        symbol, interval, pd.DataFrame(rows)
    )
    return {"added": result.added, "skipped_issues": result.skipped_issues,
            "paths": list(result.paths)}


@task(name="score-forecasts", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[2, 5],
      retry_condition_fn=retry_on_io)
def score_forecasts_task(symbol: str, interval: str, data_dir: str) -> dict[str, Any]:
    """Score the forecasts matured since the last scoring, publish the live table, markdown
    and chart (``reports/live/<SYMBOL>-<INTERVAL>.png``) and, once per champion, the
    ``cryptoflow.forecast.degraded`` event; the JSON-able summary (``LiveScores.to_dict``)."""
    from storage.reports import ReportStore
    from tasks.forecast.events import emit_degraded
    from tasks.forecast.live import record_alert, score_market
    from tasks.forecast.publish import live_chart_png, publish_live

    live = score_market(data_dir, symbol, interval)  # idempotent: a retry scores nothing twice
    chart = ReportStore(DataLayout.at(data_dir).reports).write_live_chart(
        live.symbol, live.interval, live_chart_png(live)
    )
    publish_live(live, str(chart))
    logger = get_run_logger()
    logger.info("%s", live.message)
    if live.alert is not None:
        emit_degraded(live.alert)  # then remember it: a crash in between sends it again
        record_alert(data_dir, live.symbol, live.interval, live.alert)
        logger.warning("%s %s: champion %s degraded, live skill %.4f < %g over %d issues: "
                       "event sent", live.symbol, live.interval, live.champion.model,
                       live.alert["skill"], live.threshold, live.alert["issues"])
    return {**live.to_dict(), "chart": str(chart)}
