"""Render one evaluated run: leaderboard rows, metadata, figures, HTML and the small figures."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.evaluation import RunEvaluation
from tasks.report.gate import GateDecision
from tasks.report.html import render_report_html
from tasks.report.leaderboard import leaderboard_rows
from tasks.report.plots import FIGURE_CAPTIONS, report_figures
from tasks.report.sweep import SweepTable

CHAMPION_RULE = (
    "lowest validation loss (scaled MSE of the target on the validation "
    "windows) among the zoo's models; baselines are compared, never champion"
)
#: Resolution of the figures embedded in the markdown artifact (the HTML uses 100).
SMALL_DPI = 55


def report_meta(
    evaluation: RunEvaluation, flow_run_id: str | None, gate: GateDecision | None = None
) -> dict[str, Any]:
    """The run's metadata plus the champion, its rule, the champion gate's decision on it,
    the flow run and the time of writing."""
    return {
        **evaluation.meta,
        "champion": evaluation.champion,
        "champion_rule": CHAMPION_RULE,
        "champion_gate": None if gate is None else gate.to_meta(),
        "report_flow_run_id": flow_run_id,
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def render_report(
    evaluation: RunEvaluation,
    sweep: SweepTable | None,
    flow_run_id: str | None,
    gate: GateDecision | None = None,
    live: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``{"rows", "meta", "figures", "html", "small", "live"}`` of one evaluated run;
    ``sweep``: the regularization sweep made on its window file, drawn and named (run and
    table); ``gate``: whether its winner was promoted to champion, and why; ``live``: its live
    scores when it is its market's scored champion (:func:`tasks.report.live.live_section`)."""
    rows = leaderboard_rows(evaluation)
    meta = report_meta(evaluation, flow_run_id, gate)
    captions = dict(FIGURE_CAPTIONS)
    if sweep is not None:
        meta["sweep_run"], meta["sweep_table"] = sweep.run_id, str(sweep.path)
        captions["regularization"] = (
            f"Regularization sweep of run {sweep.run_id}, made on this run's window file "
            f"({meta.get('dataset_id')}): validation error over repeats per setting."
        )
    if live is not None:
        meta["live"] = live["summary"]
    figures = report_figures(evaluation, rows, None if sweep is None else sweep.table)
    html_text = render_report_html(meta, rows, figures, captions, live)
    small = report_figures(evaluation, rows, None, dpi=SMALL_DPI)
    return {"rows": rows, "meta": meta, "figures": figures, "html": html_text, "small": small,
            "live": live}


@task(name="render-report", cache_policy=NO_CACHE)
def render_report_task(
    evaluation: Any, sweep: Any, flow_run_id: str | None, gate: Any = None, live: Any = None
) -> dict[str, Any]:
    """Leaderboard rows, figures (PNG), HTML and markdown of one evaluated run."""
    return render_report(evaluation, sweep, flow_run_id, gate, live)
