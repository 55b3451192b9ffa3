"""What a report is made of: the run to report, a fingerprint of its inputs, and reuse."""

from __future__ import annotations

import hashlib

from prefect import task
from prefect.cache_policies import NO_CACHE

from storage.layout import DataLayout
from storage.reports import ReportStore
from storage.runs import RunStore
from storage.version import DATA_FORMAT_VERSION
from tasks.evaluation import resolve_run
from tasks.report.live import live_token

#: Bump when the report's content changes for the same run (figures, columns, metrics).
REPORT_VERSION = "3"
#: The run-store files a report is made of, relative to the run folder.
REPORT_INPUT_PATTERNS: tuple[str, ...] = (
    "*/spec.json",
    "*/history.csv",
    "*/result.json",
    "*.csv",
    "sweep*/*.csv",
)


def report_fingerprint(store: RunStore, run_id: str) -> str:
    """SHA-256 of each model's spec, history and result, any sweep CSV (its own, or another
    run's on the same window file), the dataset id and the report and data format versions."""
    info = store.read_run(run_id) or {}
    digest = hashlib.sha256()
    digest.update(f"{REPORT_VERSION}/{DATA_FORMAT_VERSION}/{info.get('dataset_id')}".encode())
    run_dir = store.run_dir(run_id)
    files = sorted(p for pattern in REPORT_INPUT_PATTERNS for p in run_dir.glob(pattern))
    for path in files:
        digest.update(str(path.relative_to(run_dir)).encode() + b"\0" + path.read_bytes())
    for source, path in store.sweep_tables(run_id):  # sweeps on its window file, by others
        if source != run_id:
            digest.update(f"{source}/{path.name}".encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


@task(name="report-inputs", cache_policy=NO_CACHE)
def report_inputs_task(data_dir: str, run_id: str | None) -> tuple[str, str]:
    """The run to report (default: the latest) and the fingerprint of its inputs: for the
    current champion with live scores, also its market's score state (see
    :mod:`tasks.report.live`), so that new scores make the report again."""
    store = RunStore(DataLayout.at(data_dir).runs)
    run_id = resolve_run(store, run_id)
    fingerprint = report_fingerprint(store, run_id)
    token = live_token(data_dir, run_id)
    if token is not None:
        fingerprint = hashlib.sha256(f"{fingerprint}/{token}".encode()).hexdigest()
    return run_id, fingerprint


def run_kind(store: RunStore, run_id: str) -> str:
    """``sweep`` for a regularization sweep's run, else ``train`` (its ``run.json`` says)."""
    return str((store.read_run(run_id) or {}).get("kind") or "train")


@task(name="run-kind", cache_policy=NO_CACHE)
def run_kind_task(data_dir: str, run_id: str) -> str:
    """Whether the run to report is a training run (``train``) or a sweep (``sweep``)."""
    return run_kind(RunStore(DataLayout.at(data_dir).runs), run_id)


@task(name="reuse-report", cache_policy=NO_CACHE)
def reusable_report_task(data_dir: str, run_id: str, fingerprint: str) -> str | None:
    """The existing ``report.html`` of ``run_id`` if it was made from exactly these inputs."""
    path = ReportStore(DataLayout.at(data_dir).reports).current_report(run_id, fingerprint)
    return None if path is None else str(path)
