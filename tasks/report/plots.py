"""Which figures a report shows, drawn from one evaluated run and rendered to PNG bytes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from storage.schema import Interval
from tasks import figures as F
from tasks.evaluation import EntryKind, RunEvaluation

FIGURE_CAPTIONS: dict[str, str] = {
    "actual_vs_predicted": "The champion's forecasts (red dots, one 16-step forecast per "
    "window) against the actual close, over the last part of the evaluation windows.",
    "leaderboard": "RMSE of each model on the evaluation windows; baselines as vertical lines.",
    "error_by_horizon": "RMSE per forecast step: how fast each forecast degrades.",
    "learning_curves": "Training and validation loss per epoch; the chosen epoch is marked.",
    "regularization": "Regularization sweep: validation error over repeats per setting.",
}


def interval_minutes(interval: Any) -> int | None:
    """Minutes per candle of an interval name such as ``MINUTE_5`` (None when unknown)."""
    try:
        return Interval.parse(str(interval)).ms // 60_000
    except (ValueError, TypeError):
        return None


def price_unit(symbol: Any) -> str:
    """Quote currency of a symbol such as ``BTC_USDT`` (USD when unknown)."""
    if isinstance(symbol, str) and "_" in symbol:
        return symbol.split("_", 1)[1]
    return "USD"


def report_figures(
    evaluation: RunEvaluation,
    rows: Sequence[Mapping[str, Any]],
    sweep: pd.DataFrame | None = None,
    dpi: int = 100,
) -> dict[str, bytes]:
    """Render every report figure to PNG bytes, keyed by name (see ``FIGURE_CAPTIONS``)."""
    label = "validation (seed leak)" if evaluation.eval_split == "validation" else "test"
    unit = price_unit(evaluation.meta.get("symbol"))
    out: dict[str, Any] = {}
    fc = evaluation.champion_forecast
    if fc is not None:
        out["actual_vs_predicted"] = F.actual_vs_predicted_figure(
            fc.output_times,
            fc.actual,
            fc.predicted,
            model=fc.name,
            split_label=label,
            price_unit=unit,
            input_times=fc.input_times,
            inputs=fc.inputs,
        )
    models = {r["model"]: r["test_rmse"] for r in rows if r["kind"] == EntryKind.MODEL}
    baselines = {r["model"]: r["test_rmse"] for r in rows if r["kind"] == EntryKind.BASELINE}
    out["leaderboard"] = F.leaderboard_figure(
        models, baselines, split_label=label, price_unit=unit, champion=evaluation.champion
    )
    by_step = {r["model"]: r["rmse_by_step"] for r in rows if r.get("rmse_by_step")}
    out["error_by_horizon"] = F.horizon_error_figure(
        {k: [v if v is not None else float("nan") for v in vs] for k, vs in by_step.items()},
        split_label=label,
        price_unit=unit,
        candle_minutes=interval_minutes(evaluation.meta.get("interval")),
    )
    if evaluation.histories:
        chosen = {e.name: e.best_epoch for e in evaluation.entries if e.kind == EntryKind.MODEL}
        statuses = {e.name: e.status for e in evaluation.entries if e.kind == EntryKind.MODEL}
        out["learning_curves"] = F.learning_curves_figure(
            evaluation.histories, chosen, statuses=statuses
        )
    if sweep is not None and len(sweep):
        out["regularization"] = F.regularization_figure(sweep, price_unit=unit)
    return {name: F.figure_png(fig, dpi=dpi) for name, fig in out.items()}
