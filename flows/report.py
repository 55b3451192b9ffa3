"""The report flow: select checkpoints by val_loss, score models and baselines on the same
windows, write ``reports/<run-id>/report.html`` (self-contained) with the leaderboard, publish
Prefect artifacts and record the champion. Plus ``compare``: tutorial vs seed vs honest.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from storage.atomic import atomic_write_text
from storage.champions import ChampionRegistry
from storage.layout import DataLayout
from storage.runs import RunStore, validate_name


def _flow_run_id() -> str | None:
    from prefect.runtime import flow_run

    run_id = flow_run.id
    return str(run_id) if run_id else None


#: Bump when the report's content changes for the same run (figures, columns, metrics).
REPORT_VERSION = "1"
_INPUTS_FILE = "inputs.sha256"


@task(name="report-inputs", cache_policy=NO_CACHE)
def report_inputs_task(data_dir: str, run_id: str | None) -> tuple[str, str]:
    """The run to report (default: the latest) and a fingerprint of everything its report is
    made of: each model's spec, history and result, the window file, any sweep CSV, versions."""
    import hashlib

    from storage.version import DATA_FORMAT_VERSION
    from tasks.evaluation import resolve_run

    store = RunStore(DataLayout.at(data_dir).runs)
    run_id = resolve_run(store, run_id)
    info = store.read_run(run_id) or {}
    digest = hashlib.sha256()
    digest.update(f"{REPORT_VERSION}/{DATA_FORMAT_VERSION}/{info.get('dataset_id')}".encode())
    run_dir = store.run_dir(run_id)
    files = sorted(
        p for pattern in ("*/spec.json", "*/history.csv", "*/result.json", "*.csv", "sweep*/*.csv")
        for p in run_dir.glob(pattern)
    )
    for path in files:
        digest.update(str(path.relative_to(run_dir)).encode() + b"\0" + path.read_bytes())
    return run_id, digest.hexdigest()


@task(name="reuse-report", cache_policy=NO_CACHE)
def reusable_report_task(data_dir: str, run_id: str, fingerprint: str) -> str | None:
    """The existing ``report.html`` of ``run_id`` if it was made from exactly these inputs."""
    report_dir = DataLayout.at(data_dir).reports / validate_name(run_id)
    html, stamp = report_dir / "report.html", report_dir / _INPUTS_FILE
    if html.is_file() and stamp.is_file() and stamp.read_text().strip() == fingerprint:
        return str(html)
    return None


@task(name="evaluate-run", cache_policy=NO_CACHE)
def evaluate_run_task(data_dir: str, run_id: str | None) -> Any:
    """Select each model's epoch, score models and baselines, choose the champion."""
    from tasks.evaluation import evaluate_run

    return evaluate_run(data_dir, run_id)


@task(name="load-sweep", cache_policy=NO_CACHE)
def load_sweep_task(data_dir: str, run_id: str) -> Any:
    """The regularization sweep table for the report, if any (else None).

    Looked for first in the run's own folder (``runs/<run-id>/*.csv``, ``sweep*/*.csv``), then
    the newest ``runs/*/sweep*.csv`` of any run; only a CSV with the sweep's columns counts.
    """
    import pandas as pd

    from tasks.figures import SWEEP_COLUMNS

    store = RunStore(DataLayout.at(data_dir).runs)
    run_dir = store.run_dir(run_id)
    own = sorted([*run_dir.glob("*.csv"), *run_dir.glob("sweep*/*.csv")])
    others = sorted(store.root.glob("*/sweep*.csv"), key=lambda p: p.parent.name, reverse=True)
    for path in [*own, *others]:
        df = pd.read_csv(path)
        if all(c in df.columns for c in SWEEP_COLUMNS):
            return df
    return None


@task(name="render-report", cache_policy=NO_CACHE)
def render_report_task(evaluation: Any, sweep: Any, flow_run_id: str | None) -> dict[str, Any]:
    """Leaderboard rows, figures (PNG), HTML and markdown of one evaluated run."""
    from datetime import UTC, datetime

    from tasks.report import (
        FIGURE_CAPTIONS,
        leaderboard_rows,
        render_report_html,
        report_figures,
    )

    rows = leaderboard_rows(evaluation)
    meta = {
        **evaluation.meta,
        "champion": evaluation.champion,
        "champion_rule": "lowest validation loss (scaled MSE of the target on the validation "
        "windows) among the zoo's models; baselines are compared, never champion",
        "report_flow_run_id": flow_run_id,
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    figures = report_figures(evaluation, rows, sweep)
    html_text = render_report_html(meta, rows, figures, FIGURE_CAPTIONS)
    small = report_figures(evaluation, rows, None, dpi=55)
    return {"rows": rows, "meta": meta, "figures": figures, "html": html_text, "small": small}


@task(name="write-report", cache_policy=NO_CACHE)
def write_report_task(
    data_dir: str, rendered: dict[str, Any], fingerprint: str | None = None
) -> dict[str, str]:
    """Write the report folder atomically, then the fingerprint of its inputs; returns paths."""
    from tasks.report import write_report_files

    run_id = validate_name(rendered["meta"]["run_id"])
    report_dir = DataLayout.at(data_dir).reports / run_id
    paths = write_report_files(
        report_dir, rendered["meta"], rendered["rows"], rendered["figures"], rendered["html"]
    )
    if fingerprint is not None:  # written last: a crash before it means "not up to date"
        atomic_write_text(report_dir / _INPUTS_FILE, fingerprint + "\n")
    return paths


@task(name="publish-artifacts", cache_policy=NO_CACHE)
def publish_artifacts_task(rendered: dict[str, Any], report_path: str) -> list[str]:
    """Publish the leaderboard (table) and the report summary (markdown) as Prefect artifacts."""
    from tasks.report import artifact_key, render_report_markdown

    meta, rows = rendered["meta"], rendered["rows"]
    run_id = meta["run_id"]
    table = [{k: v for k, v in r.items() if not isinstance(v, list)} for r in rows]
    table_id = create_table_artifact(
        table=table,
        key=artifact_key("leaderboard", run_id),
        description=f"Leaderboard of run {run_id} ({meta['protocol']} protocol)",
    )
    md_id = create_markdown_artifact(
        markdown=render_report_markdown(meta, rows, rendered["small"], report_path),
        key=artifact_key("report", run_id),
        description=f"Forecast report of run {run_id}",
    )
    return [str(table_id), str(md_id)]


@task(name="record-champion", cache_policy=NO_CACHE)
def record_champion_task(data_dir: str, evaluation: Any, flow_run_id: str | None) -> Any:
    """Add the run's champion, with its lineage, to the champion registry."""
    if evaluation.champion is None:
        return None
    e = evaluation.entry(evaluation.champion)
    meta = evaluation.meta
    return ChampionRegistry(DataLayout.at(data_dir).reports).record(
        {
            "run_id": evaluation.run_id,
            "protocol": evaluation.protocol,
            "model": e.name,
            "epoch": e.best_epoch,
            "checkpoint": e.checkpoint,
            "dataset_id": meta.get("dataset_id"),
            "candle_fingerprint": meta.get("candle_fingerprint"),
            "metrics": {
                "validation": e.validation.to_dict() if e.validation else None,
                evaluation.eval_split if evaluation.eval_split != "validation" else "seed_test": (
                    e.evaluation.to_dict() if e.evaluation else None
                ),
            },
            "eval_split": evaluation.eval_split,
            "flow_run_id": flow_run_id,
            "train_flow_run_id": meta.get("train_flow_run_id"),
        }
    )


@flow(name="report", log_prints=False)
def report(run_id: str | None = None, data_dir: str | None = None) -> str:
    """Report one run (default: the latest); returns the path of its ``report.html``."""
    root = str(DataLayout.at(data_dir).root)
    flow_run_id = _flow_run_id()
    run_id, fingerprint = report_inputs_task(root, run_id)
    existing = reusable_report_task(root, run_id, fingerprint)
    if existing is not None:
        get_run_logger().info("report of run %s is up to date: %s", run_id, existing)
        return existing
    evaluation = evaluate_run_task(root, run_id)
    sweep = load_sweep_task(root, evaluation.run_id)
    rendered = render_report_task(evaluation, sweep, flow_run_id)
    paths = write_report_task(root, rendered, fingerprint)
    publish_artifacts_task(rendered, paths["report_html"])
    record_champion_task(root, evaluation, flow_run_id)
    get_run_logger().info(
        "report of run %s: champion %s -> %s",
        evaluation.run_id,
        evaluation.champion,
        paths["report_html"],
    )
    return paths["report_html"]


@task(name="read-leaderboard", cache_policy=NO_CACHE)
def read_leaderboard_task(data_dir: str, run_id: str) -> list[dict[str, Any]] | None:
    """A run's ``leaderboard.json``, or None when the run has not been reported yet."""
    import json

    path = DataLayout.at(data_dir).reports / validate_name(run_id) / "leaderboard.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


@flow(name="compare-protocols", log_prints=False)
def compare(seed_run: str, honest_run: str, data_dir: str | None = None) -> str:
    """Tutorial vs seed vs honest, side by side; returns the path of the comparison HTML."""
    from tasks.report import comparison_rows, leaderboard_json, render_comparison_html

    root = str(DataLayout.at(data_dir).root)
    boards = {}
    for run in (seed_run, honest_run):
        validate_name(run)
        board = read_leaderboard_task(root, run)
        if board is None:
            report(run, root)
            board = read_leaderboard_task(root, run)
        boards[run] = board
    rows = comparison_rows(boards[seed_run], boards[honest_run])
    out_dir = DataLayout.at(root).reports / "comparisons"
    name = f"{seed_run}__vs__{honest_run}"
    atomic_write_text(out_dir / f"{name}.json", leaderboard_json(rows))
    path = atomic_write_text(
        out_dir / f"{name}.html", render_comparison_html(rows, seed_run, honest_run)
    )
    create_table_artifact(
        table=rows,
        key="tutorial-vs-seed-vs-honest",
        description=f"Tutorial vs seed run {seed_run} vs honest run {honest_run}",
    )
    return str(Path(path))
