"""Live forecasts of a market's champion: the newest window built exactly as training built
its windows (``window``), the champion's and persistence's forecast rows (``issue``), and the
thin Prefect tasks (``task``). The rows go to :mod:`storage.forecasts`.
"""

from tasks.forecast.issue import ForecastIssue, issue_forecast
from tasks.forecast.window import NewestWindow, newest_window

__all__ = ["ForecastIssue", "NewestWindow", "issue_forecast", "newest_window"]
