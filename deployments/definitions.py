"""The deployments, read from ``prefect.yaml`` so ``prefect deploy`` and ``cryptoflow serve`` agree.

``prefect.yaml`` at the repository root is the single source of truth for names, schedules,
concurrency limits and triggers; :func:`runner_deployments` turns each entry into a
``RunnerDeployment`` for :func:`prefect.serve` (no work pool needed).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
PREFECT_YAML = REPO_ROOT / "prefect.yaml"


@dataclass(frozen=True)
class DeploymentSpec:
    """One deployment entry of ``prefect.yaml``, validated."""

    name: str
    entrypoint: str
    description: str = ""
    tags: tuple[str, ...] = ()
    parameters: dict[str, Any] = field(default_factory=dict)
    intervals: tuple[timedelta, ...] = ()
    crons: tuple[tuple[str, str | None], ...] = ()
    #: Per schedule, intervals first then crons: False for one listed ``active: false``
    #: (registered, switched off until turned on in the UI).
    active: tuple[bool, ...] = ()
    concurrency_limit: dict[str, Any] | None = None
    triggers: tuple[dict[str, Any], ...] = ()


def load_specs(path: Path = PREFECT_YAML) -> list[DeploymentSpec]:
    """Parse the ``deployments:`` list of ``prefect.yaml`` (safe YAML, no custom tags)."""
    doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    specs = []
    for entry in doc.get("deployments") or []:
        intervals, crons, active_intervals, active_crons = [], [], [], []
        for sched in entry.get("schedules") or []:
            active = sched.get("active", True) is not False
            if "interval" in sched:
                intervals.append(timedelta(seconds=float(sched["interval"])))
                active_intervals.append(active)
            elif "cron" in sched:
                crons.append((str(sched["cron"]), sched.get("timezone")))
                active_crons.append(active)
            else:
                raise ValueError(f"deployment {entry.get('name')!r}: unsupported schedule {sched}")
        specs.append(
            DeploymentSpec(
                name=str(entry["name"]),
                entrypoint=str(entry["entrypoint"]),
                description=str(entry.get("description") or "").strip(),
                tags=tuple(entry.get("tags") or ()),
                parameters=dict(entry.get("parameters") or {}),
                intervals=tuple(intervals),
                crons=tuple(crons),
                active=tuple(active_intervals + active_crons),
                concurrency_limit=entry.get("concurrency_limit"),
                triggers=tuple(entry.get("triggers") or ()),
            )
        )
    return specs


def load_flow(entrypoint: str):
    """Import the flow named by a ``flows/<module>.py:<function>`` entrypoint."""
    file_part, _, attr = entrypoint.partition(":")
    parts = Path(file_part).with_suffix("").parts
    if not attr or len(parts) != 2 or parts[0] != "flows" or not Path(file_part).suffix == ".py":
        raise ValueError(f"entrypoint {entrypoint!r} must look like flows/<module>.py:<flow>")
    return getattr(importlib.import_module(".".join(parts)), attr)


def runner_deployments(specs: list[DeploymentSpec] | None = None, *, schedules: bool = True):
    """``RunnerDeployment`` objects for :func:`prefect.serve`, one per spec."""
    from prefect.client.schemas.actions import DeploymentScheduleCreate
    from prefect.client.schemas.objects import ConcurrencyLimitConfig
    from prefect.client.schemas.schedules import CronSchedule, IntervalSchedule
    from prefect.events.schemas.deployment_triggers import DeploymentEventTrigger

    deployments = []
    for spec in specs if specs is not None else load_specs():
        flow = load_flow(spec.entrypoint)
        sched_objs: list[Any] = []
        if schedules:
            sched_objs += [IntervalSchedule(interval=i) for i in spec.intervals]
            sched_objs += [CronSchedule(cron=c, timezone=tz or "UTC") for c, tz in spec.crons]
            active = spec.active or (True,) * len(sched_objs)
            sched_objs = [
                s if on else DeploymentScheduleCreate(schedule=s, active=False)
                for s, on in zip(sched_objs, active, strict=True)
            ]
        limit = None
        if spec.concurrency_limit:
            limit = ConcurrencyLimitConfig(**spec.concurrency_limit)
        triggers = [DeploymentEventTrigger(**t) for t in spec.triggers]
        deployments.append(
            flow.to_deployment(
                name=spec.name,
                description=spec.description or None,
                tags=list(spec.tags),
                parameters=spec.parameters or None,
                schedules=sched_objs or None,
                concurrency_limit=limit,
                triggers=triggers or None,
            )
        )
    return deployments
