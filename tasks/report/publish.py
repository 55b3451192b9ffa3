"""The report's Prefect artifacts: the leaderboard as a table, the summary as markdown."""

from __future__ import annotations

import re
from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from tasks.report.leaderboard import scalar_columns
from tasks.report.markdown import render_report_markdown


def artifact_key(prefix: str, run_id: str) -> str:
    """A Prefect artifact key (lowercase letters, digits, dashes) for a run."""
    slug = re.sub(r"[^a-z0-9]+", "-", f"{prefix}-{run_id}".lower()).strip("-")
    return slug[:200]


@task(name="publish-artifacts", cache_policy=NO_CACHE)
def publish_artifacts_task(rendered: dict[str, Any], report_path: str) -> list[str]:
    """Publish the leaderboard (table) and the report summary (markdown) as Prefect artifacts."""
    meta, rows = rendered["meta"], rendered["rows"]
    run_id = meta["run_id"]
    table_id = create_table_artifact(
        table=scalar_columns(rows),
        key=artifact_key("leaderboard", run_id),
        description=f"Leaderboard of run {run_id} ({meta['protocol']} protocol)",
    )
    md_id = create_markdown_artifact(
        markdown=render_report_markdown(meta, rows, rendered["small"], report_path,
                                        rendered.get("live")),
        key=artifact_key("report", run_id),
        description=f"Forecast report of run {run_id}",
    )
    return [str(table_id), str(md_id)]
