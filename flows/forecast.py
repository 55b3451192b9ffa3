"""The ``forecast`` flow: for every market, each champion forecasts the candles after the newest
stored one; its rows and persistence's go to the forecast store.

Recipe, per market (one after another: each is a model load and one prediction): issue the
forecast -> store its rows -> score the matured forecasts (live metrics, artifacts, the
degraded event) -> finally the cross-market index. A market that cannot forecast (no champion
yet, a gap in the newest window) does not stop the others: every other market's forecast is
stored first, then the run fails naming each market that could not.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger

from flows.params import (
    DEFAULT_INTERVAL,
    DEFAULT_SYMBOL,
    DataDir,
    Intervals,
    Symbols,
    market_label,
    market_list,
)
from storage.layout import DataLayout, live_prefixes, stage_prefixes
from storage.remote import mirrored
from tasks.forecast.outcome import raise_failures
from tasks.forecast.task import forecast_task, score_forecasts_task, store_forecasts_task
from tasks.report.markets import markets_summary_task


@flow(name="forecast", validate_parameters=True)
def forecast(
    symbols: Symbols = [DEFAULT_SYMBOL],  # noqa: B006 - Prefect shows the default in its form
    intervals: Intervals = [DEFAULT_INTERVAL],  # noqa: B006
    data_dir: DataDir = None,
) -> dict[str, Any]:
    """Forecast the next K candles of every market with its current champion (and
    persistence), store the rows, then score the forecasts whose candles have arrived (live
    scores vs persistence, artifacts, the degraded event once per champion); returns the first
    market's ``{"symbol", "interval", "issued_at", "champion", "added", "skipped_issues",
    "paths", "live"}`` (``live``: the scoring summary), plus ``"markets"`` (every market's, by
    "SYMBOL INTERVAL") when there are several.

    Parameters are validated before any work (naming the parameter). Re-running with no new
    candle issues nothing twice: the store keeps the rows of an issue it already has.

    Args:
        symbols: Poloniex markets, BASE_QUOTE (e.g. BTC_USDT).
        intervals: Candle intervals (Poloniex names, e.g. MINUTE_5); every symbol at each.
        data_dir: Data directory holding the stores (default $CRYPTOFLOW_DATA_DIR or ./data).
    """
    markets = market_list(symbols, intervals)
    prefixes = [p for s, i in markets for p in stage_prefixes(s, i) + live_prefixes(s, i)]
    results: dict[str, dict[str, Any]] = {}
    failures: dict[str, BaseException] = {}
    with mirrored(data_dir, prefixes=prefixes) as data_dir:
        root = str(DataLayout.at(data_dir).root)
        for symbol, interval in markets:
            label = market_label(symbol, interval)
            try:
                results[label] = forecast_market(symbol, interval, root)
            except Exception as exc:  # noqa: BLE001 - the other markets go on; raised below
                get_run_logger().error("%s: no forecast: %s", label, exc)
                failures[label] = exc
        markets_summary_task(root, [list(m) for m in markets])
    raise_failures(failures, len(markets))
    first = results[market_label(*markets[0])]
    return {**first, "markets": results} if len(markets) > 1 else first


def forecast_market(symbol: str, interval: str, root: str) -> dict[str, Any]:
    """Issue one market's forecast, store it, score what has matured; its summary."""
    rows = forecast_task(symbol, interval, root)
    stored = store_forecasts_task(symbol, interval, root, rows)
    live = score_forecasts_task(symbol, interval, root)
    champion = next((r["model"] for r in rows if r["epoch"] is not None), None)
    return {"symbol": symbol, "interval": interval, "issued_at": rows[0]["issued_at"],
            "champion": champion, **stored, "live": live}
