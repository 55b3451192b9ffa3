"""The ``forecast`` flow: the market's champion forecasts the candles after the newest stored
one; its rows and persistence's go to the forecast store."""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.params import DEFAULT_INTERVAL, DEFAULT_SYMBOL, DataDir, IntervalName, Symbol
from storage.layout import DataLayout
from tasks.forecast.task import forecast_task, score_forecasts_task, store_forecasts_task


@flow(name="forecast", validate_parameters=True)
def forecast(
    symbol: Symbol = DEFAULT_SYMBOL,
    interval: IntervalName = DEFAULT_INTERVAL,
    data_dir: DataDir = None,
) -> dict[str, Any]:
    """Forecast the next K candles with the market's current champion (and persistence) and
    store the rows, then score the forecasts whose candles have arrived (live scores vs
    persistence, artifacts, the degraded event once per champion); returns ``{"issued_at",
    "added", "skipped_issues", "paths", "champion", "live"}`` (``live``: the scoring summary).

    Parameters are validated before any work (naming the parameter). Re-running with no new
    candle issues nothing twice: the store keeps the rows of an issue it already has.

    Args:
        symbol: Poloniex market, BASE_QUOTE (e.g. BTC_USDT).
        interval: Candle interval (Poloniex names, e.g. MINUTE_5).
        data_dir: Data directory holding the stores (default $CRYPTOFLOW_DATA_DIR or ./data).
    """
    interval = interval.value
    root = str(DataLayout.at(data_dir).root)
    rows = forecast_task(symbol, interval, root)
    stored = store_forecasts_task(symbol, interval, root, rows)
    live = score_forecasts_task(symbol, interval, root)
    champion = next((r["model"] for r in rows if r["epoch"] is not None), None)
    return {"symbol": symbol, "interval": interval, "issued_at": rows[0]["issued_at"],
            "champion": champion, **stored, "live": live}
