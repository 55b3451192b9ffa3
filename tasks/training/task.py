"""The Prefect side of training: a worker job run on a free slot, the cached per-model task, the
sweep's per-setting task, and the bookkeeping of a run (request checks, GPU limits, results).

Concurrency: each task takes a free slot from a local queue before it starts its worker process,
so at most ``models_per_gpu`` models run per GPU (and ``parallel`` on CPU); on GPUs it also
holds one slot of the Prefect global concurrency limit ``cryptoflow-gpu-<id>`` (as many slots
as the GPU's worker slots, set on each run), which keeps two flow runs on one machine from
oversubscribing a GPU.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import queue
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.cache_policies import NO_CACHE

from storage.atomic import atomic_write_text
from storage.errors import BadInputError
from storage.layout import DataLayout
from storage.remote import shared_location
from storage.runs import ModelDir, RunStore, new_run_id, validate_name
from storage.version import DATA_FORMAT_VERSION
from storage.windows.store import WindowStore
from tasks.progress import TerminalProgress
from tasks.results import result_storage_for
from tasks.training.loop import TrainOptions
from tasks.training.slots import (
    Slot,
    available_cores,
    detect_gpus,
    gpu_free_memory_mb,
    parallel_note,
    plan_slots,
)
from tasks.training.sweep import render_csv, tidy_rows
from tasks.training.worker import run_worker, train_job

GPU_LIMIT_PREFIX = "cryptoflow-gpu-"


def retry_unless_bad_input(task: Any, task_run: Any, state: Any) -> bool:
    """Retry crashes of the worker process, never bad input (a ``ValueError``)."""
    try:
        state.result(raise_on_failure=True)
    except ValueError:
        return False
    except Exception:  # noqa: BLE001, S110 - any other failure may be transient
        return True
    return True


def plan_training(models: list[str] | str, epochs: int, batch_size: int, parallel: int | None,
                  devices: str, jobs: int | None = None, models_per_gpu: int | None = None,
                  backend: str | None = None) -> tuple[list[str], list[Slot]]:
    """Check a training request's models, options, backend and devices; its model names and
    slots (no more than ``jobs``, default one per model; on CPU no more than the cores, with a
    warning; ``models_per_gpu`` per GPU)."""
    from tasks.training.backends import require_installed, resolve_backend
    from tasks.zoo import parse_models

    names = parse_models(models if isinstance(models, str) else ",".join(models))
    TrainOptions(epochs=epochs, batch_size=batch_size)
    require_installed(resolve_backend(backend))
    cores = available_cores()
    gpus = detect_gpus()
    slots = plan_slots(devices, parallel, cores, gpus, jobs or len(names), models_per_gpu,
                       gpu_free_memory_mb() if gpus else None)
    note = parallel_note(parallel, cores, slots)
    if note:
        logging.getLogger(__name__).warning(note)
    return names, slots


def prepare_training(
    models: list[str] | str, epochs: int, batch_size: int, parallel: int | None, devices: str,
    data_dir: str | None, dataset: str | None, symbol: str | None, interval: str | None,
    jobs: int | None = None, models_per_gpu: int | None = None, backend: str | None = None,
) -> tuple[list[str], Path, list[Slot], DataLayout]:
    """Validate a training request completely before anything is written: its model names,
    the backend, the window file, the slots (``jobs``: worker jobs to run, default one per
    model; ``models_per_gpu``) and the data layout."""
    names, slots = plan_training(models, epochs, batch_size, parallel, devices, jobs,
                                 models_per_gpu, backend)
    layout = DataLayout.at(data_dir)
    path = WindowStore(layout.windows).locate(dataset, symbol, interval)
    return names, path, slots, layout


def free_slots(slots: list[Slot]) -> queue.Queue[Slot]:
    """A queue holding every slot once: tasks take one before their worker starts."""
    free: queue.Queue[Slot] = queue.Queue()
    for s in slots:
        free.put(s)
    return free


def gpu_limits(slots: list[Slot]) -> dict[str, int]:
    """Prefect concurrency limit name -> slots: one per worker slot on that GPU."""
    counts: dict[str, int] = {}
    for s in slots:
        if s.gpu:
            counts[GPU_LIMIT_PREFIX + s.devices] = counts.get(GPU_LIMIT_PREFIX + s.devices, 0) + 1
    return counts


def ensure_gpu_limits(slots: list[Slot]) -> None:
    """Create or resize the per-GPU global concurrency limits (:func:`gpu_limits`)."""
    limits = gpu_limits(slots)
    if not limits:
        return
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        for name, limit in limits.items():
            client.upsert_global_concurrency_limit_by_name(name, limit)


def run_id_for(run_id: str | None) -> str:
    """The run to continue (a checked name), or a new run id."""
    return validate_name(run_id, "run id") if run_id else new_run_id()


#: What makes a run's training what it is: a later request on the same run id must agree.
RUN_IDENTITY: tuple[str, ...] = ("kind", "dataset_id", "batch_size", "seed", "checkpoints")
#: The same facts as each model's ``spec.json`` records them (the worker's own resume check).
MODEL_IDENTITY: tuple[str, ...] = ("dataset_id", "batch_size", "seed", "checkpoints")


def _differences(old: dict[str, Any], new: dict[str, Any], keys: tuple[str, ...]
                 ) -> dict[str, str]:
    """Key -> "key old != new" for each of ``keys`` both records hold with other values."""
    return {k: f"{k} {old[k]!r} != {new[k]!r}" for k in keys
            if k in old and k in new and old[k] != new[k]}


def check_run_request(store: RunStore, run_id: str, fields: dict[str, Any],
                      models: list[str]) -> None:
    """``BadInputError`` when ``run_id`` already holds a different training: another kind of
    run, window file, batch size, seed or checkpoint mode (in ``run.json`` or a requested
    model's ``spec.json``), or, for a sweep, another base model. Reads only."""
    info = store.read_run(run_id)
    if info is None:
        return
    new = {"kind": "train", **fields}
    diff = _differences({"kind": "train", **info}, new, RUN_IDENTITY)
    if new["kind"] == "sweep" and sorted(info.get("models", [])) != sorted(models):
        diff["models"] = f"models {info.get('models')!r} != {models!r}"
    for name in models if new["kind"] == "train" else []:
        spec = store.read_spec(run_id, name) or {}
        for key, text in _differences(spec, new, MODEL_IDENTITY).items():
            diff.setdefault(key, f"{name} {text}")
    if diff:
        raise BadInputError(
            f"run {run_id!r} already holds a different training ({'; '.join(diff.values())}); "
            "use a new run id, or repeat the run's own settings to continue it"
        )


@contextlib.contextmanager
def accepted_run(store: RunStore, run_id: str, fields: dict[str, Any],
                 models: list[str]) -> Iterator[str]:
    """Accept a training request on ``run_id``, then hold the run folder's lock while the
    caller trains: checked before anything is written, locked (``RunBusyError`` when another
    flow run holds it), checked again under the lock, and only then recorded in ``run.json``
    (``models`` joining those recorded so far for a train, replacing them for a sweep)."""
    check_run_request(store, run_id, fields, models)
    with store.lock(run_id):
        check_run_request(store, run_id, fields, models)
        sweep = fields.get("kind") == "sweep"
        record_run(store, run_id, {**fields, "models": models} if sweep else fields,
                   add_models=None if sweep else models)
        yield run_id


def record_run(store: RunStore, run_id: str, fields: dict[str, Any],
               add_models: list[str] | None = None) -> None:
    """Update ``run.json`` with ``fields``, keeping what earlier flow runs wrote; ``add_models``
    joins the models recorded so far."""
    info = store.read_run(run_id) or {}
    merged = {**info, **fields}
    if add_models is not None:
        merged["models"] = sorted(set(info.get("models", [])) | set(add_models))
    store.write_run(run_id, merged)


def flow_run_id() -> str | None:
    """The id of the Prefect flow run this code runs in (None outside one)."""
    from prefect.runtime import flow_run

    value = flow_run.id
    return str(value) if value else None


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
    options and code version. Slots and progress bars are plumbing, not inputs. Paths are
    named as every host names them (``shared_location``: the S3 URL under a mirror), so a
    second host's cache folder does not change the key."""
    payload = {k: parameters[k] for k in ("model", "options")}
    for k in ("dataset_path", "run_dir"):
        payload[k] = shared_location(parameters[k])
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
    retry_condition_fn=retry_unless_bad_input,
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
    job = train_job(model, dataset_path, run_dir, options)
    return run_in_slot(job, model, int(options["epochs"]), slots, progress)


def training_task_for(run_dir: str | Path) -> Any:
    """``train_model_task``, its cached result used only while the model's ``result.json`` is
    there (a finished training); otherwise it runs and resumes. Results and cache records live
    beside the data directory (``tasks.results``), so every host sees the same Cached hits."""
    finished = ModelDir(Path(run_dir)).result_path.is_file()
    data_root = Path(run_dir).parents[2]  # <data dir>/runs/<run-id>/<model>
    return train_model_task.with_options(
        refresh_cache=not finished, result_storage=result_storage_for(data_root)
    )


@task(name="sweep-setting", task_run_name="{setting}", cache_policy=NO_CACHE, retries=1,
      retry_delay_seconds=2)
def sweep_setting_task(setting: str, job: dict[str, Any], slots: Any, progress: Any = None
                       ) -> dict[str, Any]:
    """Train every repeat of one regularization setting in its own process."""
    total = int(job["epochs"]) * len(job["repeats"])
    return run_in_slot(job, setting, total, slots, progress)


def write_sweep_table(store: RunStore, run_id: str, results: list[dict[str, Any]],
                      targets: list[str], kinds: list[str]) -> str:
    """Write the tidy ``runs/<run-id>/sweep.csv`` of the settings' results; return its path."""
    out = store.run_dir(run_id) / "sweep.csv"
    atomic_write_text(out, render_csv(tidy_rows(results, targets, kinds)))
    return str(out)


def finish_training(run_id: str, names: list[str], results: list[Any]) -> str:
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
