"""The ``train`` flow: the model zoo trained in parallel, one Prefect task run (and one process)
per model, checkpoints every epoch in ``runs/<run-id>/<model>/``.

Concurrency: the flow plans *slots* (``tasks.training.plan_slots``): one per GPU, or ``--parallel``
CPU slots sharing the cores. Each task takes a free slot from a local queue before it starts its
worker process, so at most one model runs per GPU (and ``parallel`` on CPU); on GPUs it also
holds the Prefect global concurrency limit ``cryptoflow-gpu-<id>`` (limit 1, created on demand),
which keeps two flow runs on one machine from sharing a GPU.
"""

from __future__ import annotations

import hashlib
import json
import queue
import sys
import threading
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.futures import wait

from storage.layout import DataLayout
from storage.runs import RunStore, new_run_id, validate_name
from storage.version import DATA_FORMAT_VERSION
from storage.windows.store import WindowStore
from tasks.training import (
    Slot,
    TrainOptions,
    available_cores,
    detect_gpus,
    plan_slots,
    run_worker,
)
from tasks.zoo import parse_models

GPU_LIMIT_PREFIX = "cryptoflow-gpu-"


# ---------------------------------------------------------------- progress


class TerminalProgress:
    """One rich progress bar per model on a terminal (a no-op when stderr is not a TTY)."""

    def __init__(self, enabled: bool) -> None:
        self._lock = threading.Lock()
        self._bars: dict[str, Any] = {}
        self._progress = None
        if enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

            self._progress = Progress(
                TextColumn("{task.description:<16}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[status]}"), transient=False,
            )

    def __enter__(self) -> TerminalProgress:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def update(self, name: str, done: int, total: int, status: str = "") -> None:
        """Show ``done`` of ``total`` epochs for ``name``."""
        if self._progress is None:
            return
        with self._lock:
            if name not in self._bars:
                self._bars[name] = self._progress.add_task(name, total=total, status="")
            self._progress.update(self._bars[name], completed=done, total=total, status=status)


# ---------------------------------------------------------------- the task


def _is_retryable(task: Any, task_run: Any, state: Any) -> bool:
    """Retry crashes of the worker process, never bad input."""
    try:
        state.result(raise_on_failure=True)
    except ValueError:
        return False
    except Exception:  # noqa: BLE001, S110 - any other failure may be transient
        return True
    return True


def run_in_slot(
    job: dict[str, Any],
    label: str,
    total_epochs: int,
    slots: queue.Queue[Slot],
    progress: TerminalProgress | None,
) -> dict[str, Any]:
    """Run one worker job on the next free slot, reporting every epoch; return its result."""
    logger = get_run_logger()
    artifact = create_progress_artifact(0.0, description=f"{label}: waiting for a slot")
    slot = slots.get()
    try:
        done = {"epochs": 0}

        def on_event(event: dict[str, Any]) -> None:
            done["epochs"] += 1
            pct = min(100.0, 100.0 * done["epochs"] / max(1, total_epochs))
            text = (
                f"{label}: epoch {event['epoch']}/{event['epochs']} loss {event['loss']:.3g} "
                f"val_loss {event['val_loss']:.3g} ({event['seconds']:.1f} s)"
            )
            try:  # progress is best effort: a busy API must not stop the training
                update_progress_artifact(artifact, pct, description=text)
            except Exception as exc:  # noqa: BLE001
                logger.warning("progress artifact not updated: %s", exc)
            logger.info(text)
            if progress is not None:
                progress.update(label, done["epochs"], total_epochs,
                                f"val_loss {event['val_loss']:.3g}")

        if slot.gpu:
            from prefect.concurrency.sync import concurrency

            with concurrency(GPU_LIMIT_PREFIX + slot.devices, occupy=1, strict=False):
                result = run_worker(job, slot, on_event)
        else:
            result = run_worker(job, slot, on_event)
        update_progress_artifact(artifact, 100.0, description=f"{label}: done on {slot.name}")
        return {**result, "slot": slot.name}
    finally:
        slots.put(slot)


def training_cache_key(context: Any, parameters: dict[str, Any]) -> str:
    """Cache key of one training: model, window file (its name is the dataset id), run folder,
    options and code version. Slots and progress bars are plumbing, not inputs."""
    payload = {k: parameters[k] for k in ("model", "dataset_path", "run_dir", "options")}
    payload["code_version"] = DATA_FORMAT_VERSION
    blob = json.dumps(payload, sort_keys=True, default=str).encode()
    return "train-" + hashlib.sha256(blob).hexdigest()


@task(
    name="train-model",
    task_run_name="{model}",
    cache_key_fn=training_cache_key,
    persist_result=True,
    result_serializer="json",  # small dicts of paths and numbers; never pickles
    retries=1,
    retry_delay_seconds=2,
    retry_condition_fn=_is_retryable,
)
def train_model_task(
    model: str,
    dataset_path: str,
    run_dir: str,
    options: dict[str, Any],
    slots: Any,
    progress: Any = None,
) -> dict[str, Any]:
    """Train one zoo model in its own process (resuming after its last recorded epoch)."""
    job = {"kind": "train", "dataset_path": dataset_path, "model": model, "run_dir": run_dir,
           **options}
    return run_in_slot(job, model, int(options["epochs"]), slots, progress)


def _ensure_gpu_limits(slots: list[Slot]) -> None:
    """Create the per-GPU global concurrency limits (limit 1) when missing."""
    if not any(s.gpu for s in slots):
        return
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        for s in slots:
            client.upsert_global_concurrency_limit_by_name(GPU_LIMIT_PREFIX + s.devices, 1)


def prepare_training(
    models: list[str] | str,
    epochs: int,
    batch_size: int,
    parallel: int | None,
    devices: str,
    data_dir: str | None,
    dataset: str | None,
    symbol: str | None,
    interval: str | None,
) -> tuple[list[str], Path, list[Slot], DataLayout]:
    """Validate a training request completely before anything is written."""
    names = parse_models(models if isinstance(models, str) else ",".join(models))
    TrainOptions(epochs=epochs, batch_size=batch_size)
    layout = DataLayout.at(data_dir)
    path = WindowStore(layout.windows).locate(dataset, symbol, interval)
    slots = plan_slots(devices, parallel, available_cores(), detect_gpus())
    return names, path, slots, layout


@flow(name="train", validate_parameters=True)
def train(
    models: list[str] | str = "all",
    epochs: int = 100,
    batch_size: int = 8,
    parallel: int | None = None,
    devices: str = "auto",
    dataset: str | None = None,
    symbol: str | None = None,
    interval: str | None = None,
    data_dir: str | None = None,
    run_id: str | None = None,
    seed: int = 0,
    patience: int | None = None,
    checkpoints: str = "every",
    progress_bar: bool = False,
    task_runner: str = "process",
    dask_address: str | None = None,
) -> str:
    """Train the zoo on one window file, each model in its own process; returns the run id.

    Args:
        models: "all" or model names (see ``tasks.zoo.MODEL_NAMES``).
        epochs: Epochs per model (numbered from 1).
        batch_size: Batch size (the tutorial: 8).
        parallel: Models at once on CPU (default 1); on GPUs one per GPU.
        devices: auto | cpu | gpu:0,1.
        dataset: Window file path or dataset id under windows/; default: the newest one of
            symbol/interval.
        run_id: Continue (or name) this run; default: a new id.
        seed: Seed of every model.
        patience: Early stopping patience in epochs (empty: off).
        checkpoints: every | best | none.
        progress_bar: Draw a progress bar on the terminal.
        task_runner: process (one local process per model) | dask (a Dask cluster).
        dask_address: Dask scheduler, tcp://host:8786; default: a LocalCluster sized here.
    """
    logger = get_run_logger()
    use_dask = check_runner(task_runner, dask_address)
    names, path, slots, layout = prepare_training(
        models, epochs, batch_size, parallel, devices, data_dir, dataset, symbol, interval
    )
    options = TrainOptions(epochs=epochs, batch_size=batch_size, seed=seed, patience=patience,
                           checkpoints=checkpoints)
    store = RunStore(layout.runs)
    run_id = validate_name(run_id, "run id") if run_id else new_run_id()
    info = store.read_run(run_id) or {}
    store.write_run(run_id, {
        **info,
        **WindowStore(layout.windows).summary(path),
        "dataset_path": str(path),
        "models": sorted(set(info.get("models", [])) | set(names)),
        "epochs": epochs,
        "batch_size": batch_size,
        "seed": seed,
        "devices": [s.name for s in slots],
        "flow_run_id": _flow_run_id(),
    })
    job_options = {"epochs": epochs, "batch_size": batch_size, "seed": seed,
                   "patience": patience, "checkpoints": options.checkpoints.value}
    if use_dask:
        results = _train_on_dask(names, path, store, run_id, job_options, slots, dask_address)
        return _finish(run_id, names, results)
    _ensure_gpu_limits(slots)
    logger.info("run %s: %d model(s) on %s", run_id, len(names), ", ".join(s.name for s in slots))
    free: queue.Queue[Slot] = queue.Queue()
    for s in slots:
        free.put(s)
    with TerminalProgress(progress_bar and sys.stderr.isatty()) as bar:
        futures = []
        for name in names:
            model_dir = store.model_dir(run_id, name)
            # A cached result is only good while the model's result.json is there.
            finished = (model_dir / "result.json").is_file()
            task_ = train_model_task.with_options(refresh_cache=not finished)
            futures.append(
                task_.submit(name, str(path), str(model_dir), job_options, free, bar)
            )
        wait(futures)
    results = [f.result(raise_on_failure=False) for f in futures]
    return _finish(run_id, names, results)


def check_runner(task_runner: str, dask_address: str | None) -> bool:
    """Validate the runner choice (ValueError); True for Dask."""
    from flows.runners import RunnerKind, validate_address

    kind = RunnerKind(task_runner)
    if kind is RunnerKind.THREAD:
        raise ValueError("task_runner: use process or dask")
    if dask_address is not None:
        if kind is not RunnerKind.DASK:
            raise ValueError("--dask-address needs --task-runner dask")
        validate_address(dask_address)
    return kind is RunnerKind.DASK


def _train_on_dask(names: list[str], path: Path, store: RunStore, run_id: str,
                   job_options: dict[str, Any], slots: list[Slot],
                   address: str | None) -> list[Any]:
    """Each model as one task on a Dask cluster (LocalCluster sized to ``slots`` if no address)."""
    from flows.runners import make_task_runner, train_on_runner

    gpus = sum(s.gpu for s in slots)
    runner = make_task_runner("dask", address, n_workers=None if address else len(slots),
                              gpus=0 if address else gpus)
    get_run_logger().info("run %s: %d model(s) on Dask %s", run_id, len(names),
                          address or f"LocalCluster({len(slots)} workers)")
    by_model = train_on_runner(
        runner, names, str(path), {n: str(store.model_dir(run_id, n)) for n in names},
        job_options, gpus=None if address else gpus > 0,
    )
    return [by_model[n] for n in names]


def _finish(run_id: str, names: list[str], results: list[Any]) -> str:
    """Log each model's best epoch; raise when any failed; return the run id."""
    logger = get_run_logger()
    failed = [n for n, r in zip(names, results, strict=True) if isinstance(r, BaseException)]
    for name, r in zip(names, results, strict=True):
        if not isinstance(r, BaseException):
            logger.info("%s: best epoch %s val_loss %.6g", name, r["best_epoch"],
                        r["best_val_loss"] or float("nan"))
    if failed:
        first = next(r for r in results if isinstance(r, BaseException))
        raise RuntimeError(f"training failed for {', '.join(failed)}: {first}") from first
    return run_id


def _flow_run_id() -> str | None:
    from prefect.runtime import flow_run

    value = flow_run.id
    return str(value) if value else None
