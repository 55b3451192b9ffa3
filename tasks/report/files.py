"""The files of a report folder and the task that writes them (atomically, stamp last)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from storage.layout import DataLayout
from storage.reports import (
    EVALUATION_JSON,
    LEADERBOARD_CSV,
    LEADERBOARD_JSON,
    REPORT_HTML,
    ReportStore,
)
from tasks.report.leaderboard import leaderboard_csv, leaderboard_json


def report_files(
    meta: Mapping[str, Any],
    rows: Sequence[Mapping[str, Any]],
    figures: Mapping[str, bytes],
    html_text: str,
) -> dict[str, tuple[str, str | bytes]]:
    """Key -> (file name, content) of every report file, in writing order (HTML last)."""
    files: dict[str, tuple[str, str | bytes]] = {
        "leaderboard_json": (LEADERBOARD_JSON, leaderboard_json(rows)),
        "leaderboard_csv": (LEADERBOARD_CSV, leaderboard_csv(rows)),
        "evaluation_json": (EVALUATION_JSON, json.dumps(dict(meta), indent=2, default=str) + "\n"),
    }
    for name, png in figures.items():
        files[f"figure_{name}"] = (f"{name}.png", png)
    files["report_html"] = (REPORT_HTML, html_text)
    return files


def write_report(
    store: ReportStore, rendered: Mapping[str, Any], fingerprint: str | None = None
) -> dict[str, str]:
    """Write a rendered report into its run's folder, then the inputs' fingerprint; key -> path."""
    run_id = rendered["meta"]["run_id"]
    files = report_files(rendered["meta"], rendered["rows"], rendered["figures"], rendered["html"])
    written = store.write_files(run_id, dict(files.values()))
    if fingerprint is not None:  # written last: a crash before it means "not up to date"
        store.write_stamp(run_id, fingerprint)
    return {key: str(written[name]) for key, (name, _) in files.items()}


@task(name="write-report", cache_policy=NO_CACHE)
def write_report_task(
    data_dir: str, rendered: dict[str, Any], fingerprint: str | None = None
) -> dict[str, str]:
    """Write the report folder atomically, then the fingerprint of its inputs; returns paths."""
    return write_report(ReportStore(DataLayout.at(data_dir).reports), rendered, fingerprint)
