"""The walk-forward verdict: each fold's leaderboard side by side, per model the mean test skill
vs persistence across folds with its 95 % interval, a per-fold chart, its page and its tasks.

Each fold is an ordinary run (its own window file, training and report); this module only reads
their leaderboards (``reports/<run-id>/leaderboard.json``) and window-file attributes, so it
never re-scores anything and never sees a test window that chose a checkpoint.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from storage.errors import BadInputError
from storage.layout import DataLayout
from storage.reports import ReportStore
from storage.runs import RunStore
from storage.windows.reader import read_attrs
from tasks.evaluation import resolve_dataset_path
from tasks.figures import figure_png, walk_forward_figure
from tasks.metrics import finite_or_none
from tasks.report.cells import format_cell
from tasks.report.html import page_head

WALK_FORWARD_ARTIFACT_KEY = "walk-forward"
#: Per fold, the leaderboard columns the summary keeps.
FOLD_KEYS = ("skill", "skill_lo", "skill_hi", "test_mse", "test_mase", "dm_p", "champion")


def fold_info(data_dir: str, run_id: str) -> dict[str, Any]:
    """A fold's place: fold index, fold count, mode and test span, from its window file."""
    layout = DataLayout.at(data_dir)
    info = RunStore(layout.runs).read_run(run_id) or {}
    attrs = read_attrs(resolve_dataset_path(layout, info))
    spec = attrs.get("spec") or {}
    test = (attrs.get("split_bounds") or {}).get("test", {})
    return {
        "run_id": run_id,
        "fold": int(spec.get("fold", 0)),
        "folds": int(spec.get("folds", 1)),
        "fold_mode": spec.get("fold_mode", "expanding"),
        "scaler": spec.get("scaler"),
        "test_start_ms": test.get("time_start_ms"),
        "test_end_ms": test.get("time_end_ms"),
        "n_test": test.get("n_windows"),
    }


def summary_rows(
    folds: Sequence[Mapping[str, Any]], boards: Sequence[Sequence[Mapping[str, Any]]],
    level: float = 0.95,
) -> list[dict[str, Any]]:
    """One row per model and baseline: skill per fold, mean and interval across folds.

    ``folds[i]`` is :func:`fold_info` of the run whose leaderboard rows are ``boards[i]``. The
    across-fold interval is Student's t over the per-fold skills (None with fewer than two).
    """
    from tasks.significance import interval_over_folds

    if len(folds) != len(boards) or not folds:
        raise BadInputError("a walk-forward summary needs one leaderboard per fold")
    names: list[str] = []
    kinds: dict[str, str] = {}
    for board in boards:
        for r in board:
            names.append(r["model"])
            kinds.setdefault(r["model"], r.get("kind", "model"))
    rows = []
    for name in dict.fromkeys(names):
        per_fold = []
        for board in boards:
            row = next((r for r in board if r.get("model") == name), {})
            per_fold.append({k: row.get(k) for k in FOLD_KEYS})
        skills = [f["skill"] for f in per_fold if f["skill"] is not None]
        if skills:
            fi = interval_over_folds(np.asarray(skills, dtype=np.float64), level)
            mean, lo, hi = fi.mean, fi.lo, fi.hi
        else:
            mean = lo = hi = float("nan")
        rows.append({
            "model": name,
            "kind": kinds[name],
            "folds_scored": len(skills),
            "mean_skill": finite_or_none(mean),
            "mean_skill_lo": finite_or_none(lo),
            "mean_skill_hi": finite_or_none(hi),
            "champion_folds": sum(bool(f["champion"]) for f in per_fold),
            "per_fold": per_fold,
        })
    return rows


def _verdict(r: Mapping[str, Any]) -> str:
    lo, hi = r["mean_skill_lo"], r["mean_skill_hi"]
    if r["kind"] != "model" or r["model"] == "persistence":
        return "reference" if r["model"] == "persistence" else "baseline"
    if lo is None or hi is None:
        return "too few folds for an interval"
    if lo > 0:
        return "beats persistence across folds"
    if hi < 0:
        return "worse than persistence across folds"
    return "indistinguishable from persistence across folds"


def render_walk_forward_html(
    rows: Sequence[Mapping[str, Any]], folds: Sequence[Mapping[str, Any]], png_name: str
) -> str:
    """Self-contained page (the chart is a file beside it): the summary table and the folds."""
    import pandas as pd

    def when(ms: Any) -> str:
        return "–" if ms in (None, -1) else str(pd.Timestamp(int(ms), unit="ms", tz="UTC"))[:16]

    fold_rows = "".join(
        f"<tr><td>{f['fold']}</td><td>{html.escape(str(f['run_id']))}</td>"
        f"<td>{when(f['test_start_ms'])}</td><td>{when(f['test_end_ms'])}</td>"
        f"<td>{f['n_test'] if f['n_test'] is not None else '–'}</td></tr>"
        for f in folds
    )
    head = "".join(f"<th>fold {f['fold']}</th>" for f in folds)
    body = []
    for r in rows:
        cells = "".join(
            f"<td>{html.escape(format_cell('skill', f['skill']))}</td>" for f in r["per_fold"]
        )
        interval = (
            "–" if r["mean_skill_lo"] is None
            else f"[{r['mean_skill_lo']:+.3f}, {r['mean_skill_hi']:+.3f}]"
        )
        body.append(
            f"<tr><td>{html.escape(r['model'])}</td>"
            f"<td>{html.escape(format_cell('skill', r['mean_skill']))}</td>"
            f"<td>{interval}</td>{cells}<td>{html.escape(_verdict(r))}</td></tr>"
        )
    mode = folds[0]["fold_mode"] if folds else "expanding"
    return "\n".join([
        *page_head("walk-forward verdict"),
        "<h1>Walk-forward: skill vs persistence across folds</h1>",
        f'<p class="sub">{len(folds)} rolling-origin folds ({html.escape(str(mode))} training '
        "window). Each fold trains the zoo, picks epochs and its champion on its own validation "
        "windows, and only then scores its test windows; test blocks follow each other in "
        "time. Skill = 1 − MSE / MSE of persistence on the same windows; interval across folds: "
        "Student's t over the folds' skills.</p>",
        f'<img alt="test skill per fold" src="{html.escape(png_name)}">',
        "<table><thead><tr><th>Model</th><th>Mean skill</th><th>95 % interval</th>"
        f"{head}<th>Verdict</th></tr></thead><tbody>",
        *body,
        "</tbody></table>",
        "<h2>Folds</h2><table><thead><tr><th>Fold</th><th>Run</th><th>Test from</th>"
        "<th>Test to</th><th>Test windows</th></tr></thead><tbody>",
        fold_rows,
        "</tbody></table></body></html>",
    ]) + "\n"


def walk_forward_markdown(rows: Sequence[Mapping[str, Any]], n_folds: int, path: str) -> str:
    """The artifact: one line per model, mean skill and interval, and where the page is."""
    lines = [f"# Walk-forward verdict ({n_folds} folds)", "", f"Page: `{path}`", "",
             "| Model | Mean skill | 95 % interval | Verdict |", "|---|---|---|---|"]
    for r in rows:
        interval = (
            "–" if r["mean_skill_lo"] is None
            else f"[{r['mean_skill_lo']:+.3f}, {r['mean_skill_hi']:+.3f}]"
        )
        lines.append(f"| {r['model']} | {format_cell('skill', r['mean_skill'])} | {interval} "
                     f"| {_verdict(r)} |")
    return "\n".join(lines) + "\n"


@task(name="walk-forward-summary", cache_policy=NO_CACHE)
def walk_forward_task(data_dir: str, run_ids: list[str]) -> str:
    """Write ``reports/walk-forward/<last run>.html|.json|.png`` and publish the artifact."""
    import json

    layout = DataLayout.at(data_dir)
    store = ReportStore(layout.reports)
    folds, boards = [], []
    for run_id in run_ids:
        board = store.read_leaderboard(run_id)
        if board is None:
            raise BadInputError(f"fold run {run_id} has no report yet; report it first")
        folds.append(fold_info(data_dir, run_id))
        boards.append(board)
    rows = summary_rows(folds, boards)
    last = run_ids[-1]
    png_name = store.walk_forward_path(last, ".png").name
    text = json.dumps({"folds": folds, "rows": rows}, indent=2, allow_nan=False) + "\n"
    png = figure_png(walk_forward_figure(rows, [f["fold"] for f in folds]))
    page = render_walk_forward_html(rows, folds, png_name)
    path = store.write_walk_forward(last, text, page, png)
    create_markdown_artifact(
        markdown=walk_forward_markdown(rows, len(folds), str(path)),
        key=WALK_FORWARD_ARTIFACT_KEY,
        description=f"Walk-forward verdict over {len(folds)} folds",
    )
    return str(path)
