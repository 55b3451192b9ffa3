"""Training on Dask workers: device pinning before TensorFlow loads, and the training task.

A Dask worker trains each model in a child process (``tasks.training.worker.run_worker``, as
the local path does) on the worker's device, chosen when the worker starts and before anything
there could import TensorFlow. Two hooks choose it, whichever comes first:

- the worker *preload* ``--preload tasks.dask_worker`` (``dask_setup`` below), for workers
  started with ``dask worker tcp://scheduler:8786 --resources GPU=1 --preload tasks.dask_worker``
  and for the ``LocalCluster`` of ``flows.runners.make_task_runner``;
- the ``DevicePinning`` worker plugin, registered by the flow on every worker of a cluster it
  connects to (a no-op where the preload already pinned, a warning where TensorFlow is already
  loaded with other devices).

Rule (``device_for``): a worker without the ``GPU`` resource sees no GPU (``""``); a worker with
it keeps a ``CUDA_VISIBLE_DEVICES`` its launcher set, else takes GPU ``i mod n`` where ``i`` is
the number ending its name (LocalCluster names workers 0, 1, ...; ``dask worker --nworkers``
names them ``<name>-0``, ...).
"""

from __future__ import annotations

import logging
import os
import re
import sys
from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from storage.errors import BadInputError
from tasks.run_logs import route_project_logs
from tasks.training.runtime import WORKER_THREADS_ENV, runtime_env
from tasks.training.slots import Slot, detect_gpus
from tasks.training.task import retry_unless_bad_input
from tasks.training.worker import run_worker, train_job

GPU_RESOURCE = "GPU"
#: Set on a worker once its device is chosen (the value given to ``CUDA_VISIBLE_DEVICES``).
PINNED_ENV = "CRYPTOFLOW_PINNED_DEVICES"
_TRAILING_INT = re.compile(r"(\d+)$")

log = logging.getLogger(__name__)


def device_for(name: Any, gpu_resource: float, gpus: list[str], preset: str | None) -> str:
    """``CUDA_VISIBLE_DEVICES`` for a worker called ``name`` holding ``gpu_resource`` GPUs."""
    if not gpu_resource or gpu_resource <= 0:
        return ""
    if preset:
        return preset
    if not gpus:
        return ""
    match = _TRAILING_INT.search(str(name))
    index = int(match.group(1)) if match else 0
    return gpus[index % len(gpus)]


def pin_worker(worker: Any) -> str:
    """Choose and set this worker process's visible devices (before TensorFlow); return them.

    A thread count (``OMP_NUM_THREADS``) the launcher set is kept."""
    already = os.environ.get(PINNED_ENV)
    if already is not None:
        return already
    gpu = float((getattr(worker, "total_resources", None) or {}).get(GPU_RESOURCE, 0))
    preset = os.environ.get("CUDA_VISIBLE_DEVICES") or None
    devices = device_for(worker.name, gpu, detect_gpus() if gpu and not preset else [], preset)
    if "tensorflow" in sys.modules:
        log.warning("worker %s: TensorFlow already loaded; cannot pin it to devices %r",
                    worker.name, devices)
    threads = None if "OMP_NUM_THREADS" in os.environ else worker_threads()
    os.environ.update(runtime_env(devices, threads))
    os.environ[PINNED_ENV] = devices
    return devices


def worker_threads() -> int | None:
    """TensorFlow threads for training on this worker (``$CRYPTOFLOW_WORKER_THREADS``)."""
    text = os.environ.get(WORKER_THREADS_ENV, "").strip()
    if not text:
        return None
    value = int(text)
    if value < 1:
        raise BadInputError(f"{WORKER_THREADS_ENV} must be >= 1, got {text!r}")
    return value


def dask_setup(worker: Any) -> None:
    """Dask worker preload hook (``--preload tasks.dask_worker``): pin the device at start."""
    pin_worker(worker)


class DevicePinning(WorkerPlugin):
    """Worker plugin doing what the preload does, for workers started without it."""

    name = "cryptoflow-device-pinning"

    def setup(self, worker: Any) -> None:
        """Pin the worker's device (no-op when already pinned)."""
        pin_worker(worker)


def pinned_devices() -> str | None:
    """The devices this worker was pinned to (None outside a pinned worker)."""
    return os.environ.get(PINNED_ENV)


def train_in_worker(model: str, dataset_path: str, run_dir: str, options: dict[str, Any],
                    on_epoch: Any = None, data_url: str | None = None) -> dict[str, Any]:
    """Train one zoo model from this (pinned) worker; the same result dict as the local path.

    With ``data_url`` (a remote data directory, e.g. ``s3://bucket/data``) ``dataset_path`` and
    ``run_dir`` are relative to it: the worker pulls the window file and the model's run folder
    (to resume) into its host's mirror, trains there, pushes what it wrote (also after a
    failure: completed epochs are kept) and returns paths as URLs.

    The training runs in a child process (``tasks.training.worker.run_worker``) on this worker's
    devices and threads, exactly as the local process runner does: a fresh interpreter per
    model, so no other thread of the Dask worker (heartbeats, Prefect's clients) can draw from
    the process-global ``random`` that Keras seeds weight initialisers from, TensorFlow's
    memory is returned after each model, and the same seed gives the same history bit for bit.
    """
    devices = pinned_devices()
    if devices is None:  # not started with the preload nor the plugin: pin now (no TF here)
        devices = os.environ.get("CUDA_VISIBLE_DEVICES", "")
    name = _worker_name() or "local"
    options = dict(options)
    fraction = options.pop("memory_fraction", None)  # several models per GPU: each one's cap
    slot = Slot(name=name, devices=devices, threads=worker_threads(), gpu=bool(devices),
                memory_fraction=fraction if devices else None)
    if data_url:
        return _train_remote(model, dataset_path, run_dir, options, on_epoch, data_url, slot)
    result = run_worker(train_job(model, dataset_path, run_dir, options), slot, on_epoch)
    return {**result, "devices": devices, "worker": name, "threads": slot.threads}


def _train_remote(model: str, dataset_rel: str, run_rel: str, options: dict[str, Any],
                  on_epoch: Any, data_url: str, slot: Slot) -> dict[str, Any]:
    """Pull inputs from ``data_url`` into this host's mirror, train, push the results."""
    from storage.remote import RemoteDataDir, safe_relative

    remote = RemoteDataDir(data_url)
    dataset_rel, run_rel = safe_relative(dataset_rel), safe_relative(run_rel)
    remote.pull(dataset_rel)
    remote.pull(run_rel)
    job = train_job(model, str(remote.cache / dataset_rel), str(remote.cache / run_rel), options)
    try:
        result = run_worker(job, slot, on_epoch)
    finally:
        remote.push()
    local = str(remote.cache)
    urls = {k: v.replace(local, remote.url, 1) if isinstance(v, str) and v.startswith(local)
            else v for k, v in result.items()}
    return {**urls, "devices": slot.devices, "worker": slot.name, "threads": slot.threads}


def _worker_name() -> str | None:
    """Name of the Dask worker running this code (None outside one)."""
    try:
        from distributed import get_worker

        return str(get_worker().name)
    except ValueError:
        return None


@task(
    name="train-model",
    task_run_name="{model}",
    cache_policy=NO_CACHE,
    retries=1,
    retry_delay_seconds=2,
    retry_condition_fn=retry_unless_bad_input,
)
def train_model_on_worker(model: str, dataset_path: str, run_dir: str,
                          options: dict[str, Any], data_url: str | None = None) -> dict[str, Any]:
    """Train one zoo model on the worker running this task (resumes after its last epoch).

    ``data_url``: the data directory is remote; the paths are relative to it.
    """
    route_project_logs()  # this worker's own warnings (e.g. pinning) reach the run's logs
    logger = get_run_logger()

    def on_epoch(event: dict[str, Any]) -> None:
        logger.info("%s: epoch %s/%s loss %.3g val_loss %.3g (%.1f s)", model, event["epoch"],
                    event["epochs"], event["loss"], event["val_loss"], event["seconds"])

    return train_in_worker(model, dataset_path, run_dir, options, on_epoch, data_url)

