"""The ``sweep`` flow: the tutorial's L1/L2 regularization experiment, in parallel like the zoo.

For a base model (default ``lstm_tanh_leaky``): target in {bias, kernel, recurrent, activity} x
kind in {l1, l2} x strength in {0, 0.1, 0.01, 0.001, 0.0001} x repeats (the tutorial: 30 repeats
of 30 epochs). One Prefect task run (and one worker process) per setting trains its repeats;
repeat r uses seed ``seed + r`` in every setting, so settings are compared on paired inits.
Strength 0 is the same unregularized model for every target and kind: it is trained once per
repeat and reported under each (target, kind), as the tutorial's ``l1(0)`` column.

Writes the tidy table ``runs/<run-id>/sweep.csv``: target, kind, strength, repeat,
val_mse_scaled, val_mse_price (validation MSE of the target feature, scaled and in price units
through the window file's scaler), plus best_val_loss.
"""

from __future__ import annotations

import queue
import sys
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.futures import wait

from flows.train import (
    TerminalProgress,
    _ensure_gpu_limits,
    prepare_training,
    run_in_slot,
)
from storage.atomic import atomic_write_text
from storage.runs import RunStore, new_run_id, validate_name
from storage.windows.store import WindowStore
from tasks.training import Slot, sweep_setting_name
from tasks.zoo import Family, entry
from tasks.zoo.recurrent import RegularizerKind, RegularizerTarget

STRENGTHS: tuple[float, ...] = (0.0, 0.1, 0.01, 0.001, 0.0001)
SWEEP_COLUMNS = ("target", "kind", "strength", "repeat", "val_mse_scaled", "val_mse_price",
                 "best_val_loss")


def sweep_settings(targets: list[str], kinds: list[str], strengths: list[float]
                   ) -> list[tuple[str | None, str | None, float]]:
    """Distinct settings to train: (target, kind, strength); strength 0 once as (None, None, 0)."""
    targets = [RegularizerTarget(t).value for t in targets]
    kinds = [RegularizerKind(k).value for k in kinds]
    for s in strengths:
        if not s >= 0:
            raise ValueError(f"regularizer strengths must be >= 0, got {s}")
    settings: list[tuple[str | None, str | None, float]] = []
    if any(float(s) == 0.0 for s in strengths):
        settings.append((None, None, 0.0))
    settings += [(t, k, float(s)) for t in targets for k in kinds for s in strengths if s]
    return settings


def tidy_rows(results: list[dict[str, Any]], targets: list[str], kinds: list[str]
              ) -> list[dict[str, Any]]:
    """Rows of the sweep table; the unregularized rows appear under every (target, kind)."""
    rows: list[dict[str, Any]] = []
    for res in results:
        for row in res["rows"]:
            if row["strength"] == 0.0:
                rows += [{**row, "target": t, "kind": k} for t in targets for k in kinds]
            else:
                rows.append(row)
    return sorted(rows, key=lambda r: (r["target"], r["kind"], -r["strength"], r["repeat"]))


def render_csv(rows: list[dict[str, Any]]) -> str:
    """The tidy CSV text (floats written exactly)."""
    lines = [",".join(SWEEP_COLUMNS)]
    for r in rows:
        lines.append(",".join(
            repr(r[c]) if isinstance(r[c], float) else ("" if r[c] is None else str(r[c]))
            for c in SWEEP_COLUMNS
        ))
    return "\n".join(lines) + "\n"


@task(name="sweep-setting", task_run_name="{setting}", cache_policy=NO_CACHE, retries=1,
      retry_delay_seconds=2)
def sweep_setting_task(setting: str, job: dict[str, Any], slots: Any, progress: Any = None
                       ) -> dict[str, Any]:
    """Train every repeat of one regularization setting in its own process."""
    total = int(job["epochs"]) * len(job["repeats"])
    return run_in_slot(job, setting, total, slots, progress)


@flow(name="sweep", validate_parameters=True)
def sweep(
    model: str = "lstm_tanh_leaky",
    targets: list[str] | None = None,
    kinds: list[str] | None = None,
    strengths: list[float] | None = None,
    repeats: int = 30,
    epochs: int = 30,
    batch_size: int = 8,
    parallel: int | None = None,
    devices: str = "auto",
    dataset: str | None = None,
    symbol: str | None = None,
    interval: str | None = None,
    data_dir: str | None = None,
    run_id: str | None = None,
    seed: int = 0,
    progress_bar: bool = False,
) -> str:
    """Run the regularization sweep; returns the path of ``runs/<run-id>/sweep.csv``.

    Args:
        model: Base model (a recurrent zoo model).
        targets: Regularized parts: bias, kernel, recurrent, activity (default all).
        kinds: l1, l2 (default both).
        strengths: Penalty strengths (default 0, 0.1, 0.01, 0.001, 0.0001).
        repeats: Trainings per setting (the tutorial: 30).
        epochs: Epochs per training (the tutorial: 30).
    """
    logger = get_run_logger()
    if entry(model).family is not Family.RECURRENT:
        raise ValueError(f"the sweep regularizes a recurrent layer; {model} is a CNN")
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    targets = list(targets or [t.value for t in RegularizerTarget])
    kinds = list(kinds or [k.value for k in RegularizerKind])
    settings = sweep_settings(targets, kinds, list(strengths if strengths is not None
                                                    else STRENGTHS))
    targets = [RegularizerTarget(t).value for t in targets]
    kinds = [RegularizerKind(k).value for k in kinds]
    _, path, slots, layout = prepare_training(
        model, epochs, batch_size, parallel, devices, data_dir, dataset, symbol, interval
    )
    store = RunStore(layout.runs)
    run_id = validate_name(run_id, "run id") if run_id else new_run_id()
    store.write_run(run_id, {**(store.read_run(run_id) or {}),
                             **WindowStore(layout.windows).summary(path),
                             "kind": "sweep", "dataset_path": str(path),
                             "models": [model], "epochs": epochs, "repeats": repeats})
    _ensure_gpu_limits(slots)
    free: queue.Queue[Slot] = queue.Queue()
    for s in slots:
        free.put(s)
    sweep_dir = store.run_dir(run_id) / "sweep"
    logger.info("sweep %s: %d settings x %d repeats of %s", run_id, len(settings), repeats, model)
    with TerminalProgress(progress_bar and sys.stderr.isatty()) as bar:
        futures = []
        for target, kind, strength in settings:
            name = sweep_setting_name(target, kind, strength)
            job = {"kind": "sweep", "dataset_path": str(path), "model": model,
                   "setting_dir": str(sweep_dir / name), "target": target, "reg_kind": kind,
                   "strength": strength, "repeats": list(range(repeats)), "epochs": epochs,
                   "batch_size": batch_size, "seed": seed}
            futures.append(sweep_setting_task.submit(name, job, free, bar))
        wait(futures)
    results = [f.result() for f in futures]
    out = store.run_dir(run_id) / "sweep.csv"
    atomic_write_text(out, render_csv(tidy_rows(results, targets, kinds)))
    logger.info("sweep table: %s", out)
    return str(out)
