"""Tutorial vs seed vs honest: the per-model comparison, its HTML page and its tasks."""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from prefect import task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from storage.layout import DataLayout
from storage.reports import ReportStore
from tasks.figures import figure_png, protocol_skill_figure
from tasks.report.cells import format_cell
from tasks.report.html import page_head, png_data_uri
from tasks.report.labels import describe_model
from tasks.report.leaderboard import leaderboard_json
from tasks.report.tutorial import TUTORIAL_RESULTS, TutorialResult

COMPARISON_COLUMNS: dict[str, str] = {
    "model": "Model",
    "layers": "#Layers",
    "activation": "Activation",
    "tutorial_val_loss": "Tutorial val loss",
    "tutorial_test_mse": "Tutorial 'test' MSE",
    "seed_val_loss": "Seed val loss",
    "seed_test_mse": "Seed 'test' MSE (validation windows)",
    "honest_val_loss": "Honest val loss",
    "honest_test_mse": "Honest test MSE",
    "seed_skill": "Seed skill vs persistence",
    "honest_skill": "Honest skill vs persistence",
    "honest_verdict": "Honest verdict",
}
#: Comparison column -> the leaderboard column whose format it takes.
_FORMAT_AS: dict[str, str] = {
    "tutorial_val_loss": "val_loss",
    "seed_val_loss": "val_loss",
    "honest_val_loss": "val_loss",
    "tutorial_test_mse": "test_mse",
    "seed_test_mse": "test_mse",
    "honest_test_mse": "test_mse",
    "seed_skill": "skill",
    "honest_skill": "skill",
}
COMPARISON_ARTIFACT_KEY = "tutorial-vs-seed-vs-honest"


def comparison_rows(
    seed_rows: Iterable[Mapping[str, Any]] | None,
    honest_rows: Iterable[Mapping[str, Any]] | None,
    tutorial: Sequence[TutorialResult] = TUTORIAL_RESULTS,
) -> list[dict[str, Any]]:
    """Side by side per model: the tutorial's published numbers, the seed run, the honest run."""
    seed = {r["model"]: r for r in (seed_rows or [])}
    honest = {r["model"]: r for r in (honest_rows or [])}
    names = [t.model for t in tutorial]
    names += [n for n in [*seed, *honest] if n not in names]
    names = list(dict.fromkeys(names))
    published = {t.model: t for t in tutorial}
    out = []
    for name in names:
        t = published.get(name)
        _, layers, activation = describe_model(name)
        s, h = seed.get(name, {}), honest.get(name, {})
        out.append(
            {
                "model": name,
                "layers": layers,
                "activation": activation,
                "tutorial_val_loss": t.val_loss if t else None,
                "tutorial_test_mse": float(t.test_mse) if t else None,
                "seed_val_loss": s.get("val_loss"),
                "seed_test_mse": s.get("test_mse"),
                "honest_val_loss": h.get("val_loss"),
                "honest_test_mse": h.get("test_mse"),
                "seed_skill": s.get("skill"),
                "honest_skill": h.get("skill"),
                "honest_verdict": h.get("verdict"),
            }
        )
    return out


_COMPARISON_INTRO = (
    '<p class="sub">Tutorial: the published table of "Predicting Cryptocurrency Price With '
    'Tensorflow and Keras" (Steeve Huang; Poloniex BTC 5-min 2015–2017). Seed: our reproduction '
    "of its protocol, run {seed}. Honest: scaler fit on training rows, chronological "
    "train/validation/test with an embargo, test windows never used to choose, run {honest}. "
    "MSE in USD² (price units squared).</p>"
)


def render_comparison_html(
    rows: Sequence[Mapping[str, Any]], seed_run: str | None, honest_run: str | None
) -> str:
    """Self-contained HTML: how much of the tutorial's result survives honest evaluation."""
    body = ["<table><thead><tr>"]
    body += [f"<th>{html.escape(v)}</th>" for v in COMPARISON_COLUMNS.values()]
    body.append("</tr></thead><tbody>")
    for r in rows:
        body.append("<tr>")
        for k in COMPARISON_COLUMNS:
            body.append(f"<td>{html.escape(format_cell(_FORMAT_AS.get(k, k), r.get(k)))}</td>")
        body.append("</tr>")
    body.append("</tbody></table>")
    intro = _COMPARISON_INTRO.format(
        seed=html.escape(str(seed_run)), honest=html.escape(str(honest_run))
    )
    chart = figure_png(protocol_skill_figure(rows))
    body.insert(0, f'<img alt="skill vs persistence, seed against honest" '
                   f'src="{png_data_uri(chart)}">')
    return (
        "\n".join(
            [
                *page_head("tutorial vs seed vs honest"),
                "<h1>How much of the tutorial's result survives honest evaluation?</h1>",
                intro,
                *body,
                "</body></html>",
            ]
        )
        + "\n"
    )


@task(name="read-leaderboard", cache_policy=NO_CACHE)
def read_leaderboard_task(data_dir: str, run_id: str) -> list[dict[str, Any]] | None:
    """A run's ``leaderboard.json``, or None when the run has not been reported yet."""
    return ReportStore(DataLayout.at(data_dir).reports).read_leaderboard(run_id)


@task(name="write-comparison", cache_policy=NO_CACHE)
def write_comparison_task(
    data_dir: str,
    seed_run: str,
    honest_run: str,
    seed_board: list[dict[str, Any]] | None,
    honest_board: list[dict[str, Any]] | None,
) -> tuple[str, list[dict[str, Any]]]:
    """Write ``comparisons/<seed>__vs__<honest>.json|.html``; returns the HTML path and rows."""
    rows = comparison_rows(seed_board, honest_board)
    store = ReportStore(DataLayout.at(data_dir).reports)
    html_text = render_comparison_html(rows, seed_run, honest_run)
    path = store.write_comparison(seed_run, honest_run, leaderboard_json(rows), html_text)
    return str(path), rows


@task(name="publish-comparison", cache_policy=NO_CACHE)
def publish_comparison_task(rows: list[dict[str, Any]], seed_run: str, honest_run: str) -> str:
    """Publish the comparison as the Prefect table artifact ``tutorial-vs-seed-vs-honest``."""
    artifact_id = create_table_artifact(
        table=rows,
        key=COMPARISON_ARTIFACT_KEY,
        description=f"Tutorial vs seed run {seed_run} vs honest run {honest_run}",
    )
    return str(artifact_id)
