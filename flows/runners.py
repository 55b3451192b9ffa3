"""Task runners for the zoo: local threads/processes, or a Dask cluster (local or remote).

``make_task_runner("dask", address=None)`` makes a ``LocalCluster`` sized to the machine (one
single-threaded worker process per slot, each pinned to its device by ``tasks.dask_worker``);
with an address (``tcp://host:8786``) it connects to a running scheduler whose workers were
started with ``--preload tasks.dask_worker`` (and ``--resources GPU=1`` on GPU hosts).
``train_on_runner`` submits one ``train_model_on_worker`` task per model to such a runner from
inside any flow, asking for one GPU per task (``dask.annotate(resources={"GPU": 1})``) when the
run targets GPUs, and returns each model's result (the same dict as the local process path).
``train_zoo_on_dask`` is the ``train`` flow's Dask branch: a cluster sized to its slots (or the
given scheduler) and one such task per model.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from enum import StrEnum
from typing import Any

from prefect.futures import wait
from prefect.task_runners import ProcessPoolTaskRunner, TaskRunner, ThreadPoolTaskRunner

from storage.errors import BadInputError
from storage.settings import settings
from tasks.training.runtime import WORKER_THREADS_ENV, runtime_env
from tasks.training.slots import DEFAULT_DEVICES, Slot, available_cores, detect_gpus

DASK_PRELOAD = "tasks.dask_worker"
_ADDRESS_SCHEMES = ("tcp://", "tls://", "inproc://", "ucx://", "ws://", "wss://")


class RunnerKind(StrEnum):
    """Where a flow's tasks run."""

    PROCESS = "process"  # Prefect's ProcessPoolTaskRunner (one process per concurrent task)
    THREAD = "thread"  # Prefect's ThreadPoolTaskRunner (the zoo's tasks start their own processes)
    DASK = "dask"  # prefect-dask's DaskTaskRunner on a LocalCluster or a running scheduler


def validate_address(address: str) -> str:
    """A Dask scheduler address such as ``tcp://10.0.0.5:8786`` (BadInputError otherwise)."""
    text = address.strip()
    if not text.startswith(_ADDRESS_SCHEMES) or any(c.isspace() for c in text):
        raise BadInputError(f"bad Dask scheduler address {address!r}: use tcp://host:port")
    host_port = text.split("://", 1)[1]
    if not host_port or host_port.startswith(":"):
        raise BadInputError(f"bad Dask scheduler address {address!r}: no host")
    return text


def local_cluster_kwargs(n_workers: int | None, gpus: int, cores: int,
                         models_per_gpu: int = 1) -> dict[str, Any]:
    """``LocalCluster`` arguments: one worker process per slot, pinned devices.

    GPUs: one worker per GPU with resource ``GPU=1`` and ``models_per_gpu`` threads (its tasks
    each ask for ``1 / models_per_gpu`` GPU, see :func:`gpu_resources`). CPU: ``n_workers``
    (default: one per two cores, at least one) single-threaded workers sharing the cores,
    ``cores // n_workers`` training threads each.
    """
    if gpus < 0:
        raise BadInputError(f"gpus must be >= 0, got {gpus}")
    if n_workers is not None and n_workers < 1:
        raise BadInputError(f"n_workers must be >= 1, got {n_workers}")
    if models_per_gpu < 1:
        raise BadInputError(f"models_per_gpu must be >= 1, got {models_per_gpu}")
    n = n_workers or (gpus if gpus else max(1, cores // 2))
    per = models_per_gpu if gpus else 1
    threads = max(1, cores // (n * per))
    kwargs: dict[str, Any] = {
        "n_workers": n,
        "threads_per_worker": per,
        "processes": True,
        "dashboard_address": None,
        "host": "127.0.0.1",
        "preload": [DASK_PRELOAD],
        "env": {WORKER_THREADS_ENV: str(threads), **runtime_env(threads=threads)},
    }
    if gpus:
        kwargs["resources"] = {"GPU": 1}
    return kwargs


def check_runner(task_runner: str, dask_address: str | None) -> bool:
    """Validate the runner choice of the ``train`` flow (BadInputError); True for Dask."""
    kind = RunnerKind(task_runner)
    if kind is RunnerKind.THREAD:
        raise BadInputError("task_runner: use process or dask")
    if dask_address is not None:
        if kind is not RunnerKind.DASK:
            raise BadInputError("--dask-address needs --task-runner dask")
        validate_address(dask_address)
    return kind is RunnerKind.DASK


def make_task_runner(
    kind: RunnerKind | str,
    address: str | None = None,
    n_workers: int | None = None,
    gpus: int = 0,
    models_per_gpu: int = 1,
) -> TaskRunner:
    """A Prefect task runner of ``kind``; for Dask, ``address`` or a LocalCluster sized here."""
    kind = RunnerKind(kind)
    if address is not None and kind is not RunnerKind.DASK:
        raise BadInputError("a Dask address needs --task-runner dask")
    if kind is RunnerKind.THREAD:
        return ThreadPoolTaskRunner(max_workers=n_workers)
    if kind is RunnerKind.PROCESS:
        return ProcessPoolTaskRunner(max_workers=n_workers)
    from prefect_dask import DaskTaskRunner

    address = address or settings().dask_address  # CRYPTOFLOW_DASK_ADDRESS
    if address:
        return DaskTaskRunner(address=validate_address(address))
    return DaskTaskRunner(
        cluster_class="distributed.LocalCluster",
        cluster_kwargs=local_cluster_kwargs(n_workers, gpus, available_cores(), models_per_gpu),
    )


@contextlib.contextmanager
def gpu_resources(gpus: bool, models_per_gpu: int = 1) -> Iterator[None]:
    """Within the block, Dask submissions ask for ``1 / models_per_gpu`` of a ``GPU`` resource
    each (when ``gpus``), so a worker offering ``GPU=1`` runs that many at once."""
    if not gpus:
        yield
        return
    import dask

    with dask.annotate(resources={"GPU": gpu_share(models_per_gpu)}):
        yield


def gpu_share(models_per_gpu: int) -> float:
    """The ``GPU`` resource one training task asks for."""
    if models_per_gpu < 1:
        raise BadInputError(f"models_per_gpu must be >= 1, got {models_per_gpu}")
    return 1.0 / models_per_gpu


def pin_devices(runner: TaskRunner) -> None:
    """Register the device-pinning plugin on every worker of a Dask runner's cluster."""
    client = getattr(runner, "client", None)
    if client is None:
        return
    from tasks.dask_worker import DevicePinning

    client.register_plugin(DevicePinning(), name=DevicePinning.name)


def cluster_has_gpus(runner: TaskRunner) -> bool:
    """Whether any worker of a Dask runner's cluster offers the ``GPU`` resource."""
    client = getattr(runner, "client", None)
    if client is None:
        return False
    workers = client.scheduler_info(n_workers=-1).get("workers", {})
    return any((w.get("resources") or {}).get("GPU", 0) > 0 for w in workers.values())


def run_targets_gpus(devices: str) -> bool:
    """Whether a ``--devices`` value (auto | cpu | gpu:0,1) trains on GPUs on this machine."""
    text = (devices or DEFAULT_DEVICES).strip().lower()
    return text.startswith("gpu") or (text == DEFAULT_DEVICES and bool(detect_gpus()))


def train_on_runner(
    runner: TaskRunner,
    models: list[str],
    dataset_path: str,
    run_dirs: dict[str, str],
    options: dict[str, Any],
    gpus: bool | None = None,
    data_url: str | None = None,
    models_per_gpu: int = 1,
) -> dict[str, dict[str, Any] | BaseException]:
    """Inside a flow: train each model as one task on ``runner``; model -> result or exception.

    ``options`` are ``train_model`` keywords (epochs, batch_size, seed, patience, checkpoints).
    ``gpus``: each task asks for one ``GPU`` resource; None = when the cluster offers any.
    ``data_url``: a remote data directory (``s3://bucket/data``) the workers read the window file
    from and write the runs to; ``dataset_path`` and ``run_dirs`` are then relative to it (e.g.
    ``windows/<id>.h5``, ``runs/<run-id>/<model>``) and must already be uploaded.
    """
    from tasks.dask_worker import train_model_on_worker

    with runner:
        pin_devices(runner)
        if gpus is None:
            gpus = cluster_has_gpus(runner)
        if gpus and models_per_gpu > 1:
            options = {**options, "memory_fraction": round(1.0 / models_per_gpu, 4)}
        with gpu_resources(gpus, models_per_gpu):
            futures = {
                m: runner.submit(train_model_on_worker, parameters={
                    "model": m, "dataset_path": dataset_path, "run_dir": run_dirs[m],
                    "options": options, "data_url": data_url,
                })
                for m in models
            }
        wait(list(futures.values()))
        return {m: f.result(raise_on_failure=False) for m, f in futures.items()}


def train_zoo_on_dask(run_id: str, names: list[str], dataset_path: str, run_dirs: dict[str, str],
                      options: dict[str, Any], slots: list[Slot], address: str | None
                      ) -> list[dict[str, Any] | BaseException]:
    """Inside a flow: each model as one task on a Dask cluster (a LocalCluster sized to
    ``slots`` without ``address``); the results in the order of ``names``."""
    from prefect import get_run_logger

    devices = [s.devices for s in slots if s.gpu]
    gpus = len(set(devices))
    per = max(1, len(devices) // gpus) if gpus else 1
    runner = make_task_runner("dask", address,
                              n_workers=None if address else (gpus or len(slots)),
                              gpus=0 if address else gpus, models_per_gpu=per)
    get_run_logger().info("run %s: %d model(s) on Dask %s", run_id, len(names),
                          address or f"LocalCluster({len(slots)} workers)")
    by_model = train_on_runner(runner, names, dataset_path, run_dirs, options,
                               gpus=None if address else gpus > 0, models_per_gpu=per)
    return [by_model[n] for n in names]
