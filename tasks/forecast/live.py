"""Live scores of a market: score the forecasts that matured since the last scored issue
against the stored candles, keep the score store and its state current, and measure the
current champion against persistence over the last N issues and since its promotion.

*Since promotion* means: over the issues the current champion made (forecast rows carry the
issuing champion's run, model and epoch). The running sums reset when the champion's
(run_id, model, epoch) changes; a champion re-recorded by a later report keeps its sums.
Work per call is O(new issues): the forecast store is read from the last scored issue on, the
candles of the new targets only, the score store's newest months only.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from storage.candles import CandleStore
from storage.errors import BadInputError
from storage.forecasts import ForecastStore
from storage.layout import DataLayout
from storage.schema import Interval, empty_candles, from_epoch_ms, validate_symbol
from storage.scores import ChampionKey, ScoreState, ScoreStore, empty_scores
from storage.settings import env_name, settings
from tasks.forecast.issue import current_champion
from tasks.forecast.score import (
    LiveMetrics,
    add_to_sums,
    is_degraded,
    last_issues,
    matured_issues,
    metrics_of_pairs,
    metrics_of_sums,
    paired_errors,
    per_issue,
    score_rows,
)

#: Issues read for the metrics and chart, in windows: the chart plots the last window of
#: issues, each point's rolling skill over a full window before it (bounded: O(window)).
CHART_WINDOWS = 2


@dataclass(frozen=True)
class LiveScores:
    """One scoring of a market: what was scored now (``scored_issues``, ``scored_rows``,
    ``missing_targets``; ``pending_issues`` not matured yet), the champion, the live metrics
    over the last ``window`` issues and since promotion, whether the champion is ``degraded``
    and the event ``alert`` payload to send (None: none due, or sent already for it)."""

    symbol: str
    interval: str
    champion: ChampionKey
    scored_issues: int
    scored_rows: int
    missing_targets: int
    pending_issues: int
    last_scored: str | None
    window: int
    threshold: float
    last_n: LiveMetrics
    since_promotion: LiveMetrics
    degraded: bool
    alert: dict[str, Any] | None
    #: per issue, oldest first (see tasks.forecast.score.per_issue); not compared
    history: pd.DataFrame = field(compare=False, repr=False)

    @property
    def message(self) -> str:
        """One line: what was scored and the live skill."""
        head = f"{self.symbol} {self.interval}"
        if self.since_promotion.issues == 0:
            wait = f"{self.pending_issues} issue(s) waiting for their candles" \
                if self.pending_issues else "no forecast issued yet"
            return f"{head}: nothing matured yet to score ({wait})"
        skill = self.last_n.skill
        return (f"{head}: scored {self.scored_issues} new issue(s); {self.champion.model} live "
                f"skill vs persistence {_fmt(skill)} over the last {self.last_n.issues} "
                f"issue(s), {_fmt(self.since_promotion.skill)} over "
                f"{self.since_promotion.issues} since promotion"
                + (f"; DEGRADED (< {self.threshold})" if self.degraded else ""))

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary (no history) for a Prefect result or a flow's return value."""
        return {
            "symbol": self.symbol, "interval": self.interval,
            "champion": {"run_id": self.champion.run_id, "model": self.champion.model,
                         "epoch": self.champion.epoch},
            "scored_issues": self.scored_issues, "scored_rows": self.scored_rows,
            "missing_targets": self.missing_targets, "pending_issues": self.pending_issues,
            "last_scored": self.last_scored, "window": self.window,
            "threshold": self.threshold, "last_n": self.last_n.to_dict(),
            "since_promotion": self.since_promotion.to_dict(), "degraded": self.degraded,
            "alert": self.alert, "message": self.message,
        }


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.3f}"


def live_settings(window: int | None = None, threshold: float | None = None) -> tuple[int, float]:
    """The live window (issues) and degraded threshold: the arguments, else
    ``CRYPTOFLOW_LIVE_WINDOW`` / ``CRYPTOFLOW_DEGRADED_SKILL``; bad values name their source."""
    cfg = settings()  # refuses bad environment values, naming the variable
    if window is None:
        window = cfg.live_window
    elif isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise BadInputError(f"window: a whole number of issues >= 1 (got {window!r}); "
                            f"default {env_name('live_window')}")
    if threshold is None:
        threshold = cfg.degraded_skill
    elif (isinstance(threshold, bool) or not isinstance(threshold, int | float)
          or not np.isfinite(threshold) or threshold >= 1):
        raise BadInputError(f"threshold: a finite skill below 1 (got {threshold!r}); "
                            f"default {env_name('degraded_skill')}")
    return int(window), float(threshold)


def score_market(
    data_dir: str | Path | None,
    symbol: str,
    interval: str | Interval,
    *,
    window: int | None = None,
    threshold: float | None = None,
) -> LiveScores:
    """Score the market's newly matured forecasts, store them, update its state; the live
    metrics of its current champion. Inputs are validated before anything is read or written;
    ``BadInputError`` when the market has no champion (saying how to get one)."""
    symbol = validate_symbol(symbol)
    iv = Interval.parse(interval)
    window, threshold = live_settings(window, threshold)
    layout = DataLayout.at(data_dir)
    scores = ScoreStore(layout.scores)
    scores.series_dir(symbol, iv)  # validates the market's path
    key = ChampionKey.of(current_champion(layout, symbol, iv))
    with scores.lock(symbol, iv):  # one scoring of a market at a time
        state = scores.read_state(symbol, iv)
        since = None if state.last_scored_ms is None else state.last_scored_ms + 1
        pending = ForecastStore(layout.forecasts).read(symbol, iv, since=since)
        candles = CandleStore(layout.candles)
        newest = candles.last_open_time(symbol, iv)
        matured = matured_issues(pending, None if newest is None else int(newest.value // 10**6))
        targets = matured["target_time"]
        arrived = empty_candles() if matured.empty else candles.load(
            symbol, iv, start=targets.min(), end=targets.max())
        scored, missing = score_rows(matured, arrived)
        written = scores.write(symbol, iv, scored)
        last_ms = state.last_scored_ms
        if not matured.empty:
            last_ms = int(matured["issued_at"].astype("int64").max())

        if state.champion != key:  # promoted since the last scoring: count only its own issues
            pairs = paired_errors(scores.read(symbol, iv), key)  # once per promotion
            sums = add_to_sums({}, pairs, key)
            issues = int(pairs["issued_at"].nunique())
            degraded_sent = None
        else:
            pairs = paired_errors(scored, key)
            sums = add_to_sums(state.sums, pairs, key)
            issues = state.issues + int(pairs["issued_at"].nunique())
            degraded_sent = state.degraded
        new_state = ScoreState(last_scored_ms=last_ms, champion=key, issues=issues, sums=sums,
                               missing_targets=state.missing_targets + missing,
                               degraded=degraded_sent)

        scores.write_state(symbol, iv, new_state)
    last_n, since_promotion, history = measure(scores, symbol, iv, new_state, window)
    degraded = is_degraded(last_n, window, threshold)
    alert = None
    if degraded and degraded_sent is None:
        alert = {
            "symbol": symbol, "interval": iv.value, "model": key.model, "run_id": key.run_id,
            "epoch": key.epoch, "skill": last_n.skill, "n": last_n.n,
            "issues": last_n.issues, "window": window, "threshold": threshold,
            "mse": last_n.mse, "mse_persistence": last_n.mse_persistence,
            "last_scored": None if last_ms is None else from_epoch_ms(last_ms).isoformat(),
        }
    return LiveScores(
        symbol=symbol, interval=iv.value, champion=key,
        scored_issues=int(matured["issued_at"].nunique()), scored_rows=written.added,
        missing_targets=missing,
        pending_issues=int(pending["issued_at"].nunique()) - int(matured["issued_at"].nunique()),
        last_scored=None if last_ms is None else from_epoch_ms(last_ms).isoformat(),
        window=window, threshold=threshold, last_n=last_n, since_promotion=since_promotion,
        degraded=degraded, alert=alert, history=history,
    )


def measure(
    scores: ScoreStore, symbol: str, interval: Interval, state: ScoreState, window: int
) -> tuple[LiveMetrics, LiveMetrics, pd.DataFrame]:
    """The state's champion over its last ``window`` issues (from the newest days of the
    score store) and since promotion (the state's sums), and the chart's history per issue
    (the last ``window`` issues, each with its rolling skill over the ``window`` before it,
    read from the last ``CHART_WINDOWS * window`` issues)."""
    key = state.champion or ChampionKey("", "", None)
    if not state.issues:
        tail = paired_errors(empty_scores(), key)
    else:
        tail = paired_errors(
            scores.read_tail(symbol, interval, CHART_WINDOWS * window, run_id=key.run_id), key
        )
    history = per_issue(tail, window).iloc[-window:].reset_index(drop=True)
    return (metrics_of_pairs(last_issues(tail, window)),
            metrics_of_sums(state.sums, key, state.issues), history)


def live_view(
    data_dir: str | Path | None, symbol: str, interval: str | Interval, run_id: str,
    *, window: int | None = None, threshold: float | None = None,
) -> LiveScores | None:
    """The stored live scores of the market when its scored champion is run ``run_id`` and
    has scored issues, else None; reads only (the report's "live since promotion")."""
    symbol, iv = validate_symbol(symbol), Interval.parse(interval)
    window, threshold = live_settings(window, threshold)
    scores = ScoreStore(DataLayout.at(data_dir).scores)
    state = scores.read_state(symbol, iv)
    if state.champion is None or state.champion.run_id != run_id or not state.issues:
        return None
    last_n, since_promotion, history = measure(scores, symbol, iv, state, window)
    last = None if state.last_scored_ms is None else from_epoch_ms(state.last_scored_ms)
    return LiveScores(
        symbol=symbol, interval=iv.value, champion=state.champion, scored_issues=0,
        scored_rows=0, missing_targets=state.missing_targets, pending_issues=0,
        last_scored=None if last is None else last.isoformat(), window=window,
        threshold=threshold, last_n=last_n, since_promotion=since_promotion,
        degraded=is_degraded(last_n, window, threshold), alert=None, history=history,
    )


def record_alert(
    data_dir: str | Path | None, symbol: str, interval: str | Interval, alert: dict[str, Any]
) -> ScoreState:
    """Remember in the market's state that the degraded event of ``alert``'s champion went out
    (after it was emitted: a crash in between sends it again, never not at all)."""
    scores = ScoreStore(DataLayout.at(data_dir).scores)
    with scores.lock(symbol, interval):
        state = scores.read_state(symbol, interval)
        if state.champion is None or (state.champion.run_id, state.champion.model) != (
            alert["run_id"], alert["model"]
        ):
            raise BadInputError("the alert is not about the market's scored champion")
        sent = {**alert, "emitted_at": pd.Timestamp.now(tz="UTC").isoformat()}
        new = replace(state, degraded=sent)
        scores.write_state(symbol, interval, new)
    return new


def live_state(data_dir: str | Path | None, symbol: str, interval: str | Interval) -> ScoreState:
    """The market's scoring state as stored (a fresh one when never scored)."""
    return ScoreStore(DataLayout.at(data_dir).scores).read_state(symbol, interval)
