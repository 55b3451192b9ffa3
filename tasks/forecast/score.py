"""Scoring live forecasts, on data only: which issues have matured, their errors against the
candles that arrived, the champion's and persistence's paired errors, live MSE/MAE/skill and
whether the champion's live skill has degraded.

Rules (the same for an incremental run and a rebuild from scratch):

- An issue (one ``issued_at``) has *matured* when the candle store has reached its last target:
  the newest stored candle opens at or after every ``target_time`` of the issue. Issues mature
  in order; only the matured *prefix* of the pending issues is scored, so the last scored issue
  only moves forward and no issue is ever left behind.
- A step whose target candle is absent from the store when its issue matures (an exchange
  hole) is not scored, for every model alike (they share target times), and is counted in
  ``missing``; the issue's other steps are scored. The issue counts as scored.
- ``error = predicted_close - actual_close`` (price units).
- Metrics compare the champion with persistence on the same (issue, step) pairs of the
  champion's own issues (rows carry the issuing champion's run); skill = 1 - MSE / MSE(persistence).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from storage.scores import SCORE_COLUMNS, ChampionKey, ErrorSums, cast_scores, empty_scores
from tasks.baselines import Baseline

PERSISTENCE = Baseline.PERSISTENCE.value


def matured_issues(forecasts: pd.DataFrame, newest_candle_ms: int | None) -> pd.DataFrame:
    """The rows (m, 8) of the oldest pending issues that have all matured, up to the first
    that has not (``newest_candle_ms``: open time of the newest stored candle; None: none)."""
    if forecasts.empty or newest_candle_ms is None:
        return forecasts.iloc[:0]
    issued = forecasts["issued_at"].astype("int64").to_numpy()
    last_target = forecasts.groupby(issued)["target_time"].max().astype("int64")
    ripe = last_target.to_numpy() <= int(newest_candle_ms)  # issue times ascending
    if ripe.all():
        return forecasts
    first_unripe = int(last_target.index[int(np.argmin(ripe))])
    return forecasts[issued < first_unripe]


def score_rows(forecasts: pd.DataFrame, candles: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Score rows (m, 9) of forecast rows (n, 8) against typed candles, and the number of
    (issue, step) targets skipped because their candle is not stored."""
    if forecasts.empty:
        return empty_scores(), 0
    closes = pd.Series(candles["close"].to_numpy(dtype=np.float64),
                       index=candles["open_time"].astype("int64").to_numpy())
    target = forecasts["target_time"].astype("int64").to_numpy()
    actual = closes.reindex(target).to_numpy()
    present = ~np.isnan(actual)
    missing_keys = forecasts.loc[~present, ["issued_at", "step"]].drop_duplicates()
    df = forecasts[present].copy()
    df["actual_close"] = actual[present]
    df["error"] = df["predicted_close"].to_numpy(dtype=np.float64) - df["actual_close"]
    return cast_scores(df[list(SCORE_COLUMNS)]), len(missing_keys)


def paired_errors(scores: pd.DataFrame, champion: ChampionKey) -> pd.DataFrame:
    """Per (issue, step) of ``champion``'s issues with both scored: ``issued_at`` (epoch ms),
    ``step``, ``champion`` and ``persistence`` errors (p, 4), oldest first."""
    run = scores["run_id"] == champion.run_id
    epoch = scores["epoch"]
    mine = run & (scores["model"] == champion.model)
    if champion.epoch is None:
        mine &= epoch.isna()
    else:
        mine &= (epoch == champion.epoch).fillna(False)
    naive = run & (scores["model"] == PERSISTENCE)
    key = ["issued_at", "step"]
    a = scores.loc[mine, [*key, "error"]].rename(columns={"error": "champion"})
    b = scores.loc[naive, [*key, "error"]].rename(columns={"error": "persistence"})
    out = a.merge(b, on=key, how="inner").sort_values(key, kind="stable")
    out["issued_at"] = out["issued_at"].astype("int64")
    return out.reset_index(drop=True)


def add_to_sums(
    sums: Mapping[str, ErrorSums], pairs: pd.DataFrame, champion: ChampionKey
) -> dict[str, ErrorSums]:
    """``sums`` (per model name) plus the paired errors of ``pairs``."""
    out = dict(sums)
    for col, model in (("champion", champion.model), ("persistence", PERSISTENCE)):
        out[model] = out.get(model, ErrorSums()).plus(pairs[col].to_numpy())
    return out


@dataclass(frozen=True)
class LiveMetrics:
    """The champion vs persistence over a set of issues: ``issues`` scored, ``n`` paired
    errors (issue x step), MSE and MAE of each (price units), skill = 1 - MSE/MSE(persistence)
    (None when undefined: nothing scored, or persistence made no error)."""

    issues: int
    n: int
    mse: float | None
    mae: float | None
    mse_persistence: float | None
    mae_persistence: float | None
    skill: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def skill_of(mse: float | None, mse_persistence: float | None) -> float | None:
    """1 - mse / mse_persistence, or None when either is missing or persistence's is 0."""
    if mse is None or not mse_persistence:
        return None
    return 1.0 - mse / mse_persistence


def metrics_of_sums(
    sums: Mapping[str, ErrorSums], champion: ChampionKey, issues: int
) -> LiveMetrics:
    """Live metrics from running sums (the since-promotion figures)."""
    c, p = sums.get(champion.model, ErrorSums()), sums.get(PERSISTENCE, ErrorSums())
    return LiveMetrics(issues, c.n, c.mse, c.mae, p.mse, p.mae, skill_of(c.mse, p.mse))


def metrics_of_pairs(pairs: pd.DataFrame) -> LiveMetrics:
    """Live metrics of paired errors (p, 4) (the last-N figures)."""
    if pairs.empty:
        return LiveMetrics(0, 0, None, None, None, None, None)
    c = pairs["champion"].to_numpy(dtype=np.float64)
    p = pairs["persistence"].to_numpy(dtype=np.float64)
    mse, mse_p = float(np.mean(c * c)), float(np.mean(p * p))
    return LiveMetrics(int(pairs["issued_at"].nunique()), int(c.size), mse,
                       float(np.mean(np.abs(c))), mse_p, float(np.mean(np.abs(p))),
                       skill_of(mse, mse_p))


def last_issues(pairs: pd.DataFrame, n: int) -> pd.DataFrame:
    """The pairs of the newest ``n`` issues."""
    times = np.unique(pairs["issued_at"].to_numpy())
    if times.size <= n:
        return pairs
    return pairs[pairs["issued_at"].to_numpy() >= times[-n]].reset_index(drop=True)


def per_issue(pairs: pd.DataFrame, window: int) -> pd.DataFrame:
    """One row per issue (oldest first): ``issued_at`` (UTC), ``mae`` and ``mae_persistence``
    of its steps, and ``rolling_skill`` over the last ``window`` issues up to it."""
    if pairs.empty:
        return pd.DataFrame({"issued_at": pd.to_datetime([], utc=True), "mae": [],
                             "mae_persistence": [], "rolling_skill": []})
    df = pairs.assign(sc=pairs["champion"] ** 2, sp=pairs["persistence"] ** 2,
                      ac=pairs["champion"].abs(), ap=pairs["persistence"].abs())
    g = df.groupby("issued_at").agg(sc=("sc", "sum"), sp=("sp", "sum"), ac=("ac", "mean"),
                                    ap=("ap", "mean"))
    rc = g["sc"].rolling(window, min_periods=1).sum()
    rp = g["sp"].rolling(window, min_periods=1).sum()
    skill = (1.0 - rc / rp.where(rp > 0)).astype(np.float64)
    return pd.DataFrame({
        "issued_at": pd.to_datetime(g.index.to_numpy(), unit="ms", utc=True),
        "mae": g["ac"].to_numpy(), "mae_persistence": g["ap"].to_numpy(),
        "rolling_skill": skill.to_numpy(),
    })


def is_degraded(metrics: LiveMetrics, window: int, threshold: float) -> bool:
    """Whether the champion's live skill over the last ``window`` issues is below
    ``threshold``, judged only once that many issues are scored."""
    return metrics.issues >= window and metrics.skill is not None and metrics.skill < threshold
