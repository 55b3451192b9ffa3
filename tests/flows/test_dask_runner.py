"""The zoo on Dask: a LocalCluster of two worker processes and a separately started scheduler +
workers on 127.0.0.1, each training real zoo models for one epoch on a real window file; the
histories equal those of the local process path (``run_worker``) with the same seeds.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from prefect import flow, task

from flows.runners import (
    RunnerKind,
    gpu_resources,
    local_cluster_kwargs,
    make_task_runner,
    train_on_runner,
    validate_address,
)
from tasks.dask_worker import PINNED_ENV, device_for
from tasks.training.slots import Slot, available_cores
from tasks.training.worker import run_worker
from tests.support.paths import REPO_ROOT
from tests.support.servers import VENV_BIN, background, base_env, free_port

MODELS = ["cnn2_relu", "cnn3_leaky"]
OPTIONS = {"epochs": 1, "batch_size": 64, "seed": 7, "patience": None, "checkpoints": "every"}
# The Dask workers of a two-worker cluster get cores // 2 TensorFlow threads; so does the
# reference, so both sum in the same order.
THREADS = max(1, available_cores() // 2)


# ---------------------------------------------------------------- fast: pure rules


def test_device_for_rules():
    """No GPU resource: no GPU; launcher's choice kept; else GPU by the worker's number."""
    assert device_for("0", 0, ["0", "1"], None) == ""
    assert device_for("tcp://h:1-1", 0, ["0"], "3") == ""
    assert device_for(1, 1, ["0", "1"], None) == "1"
    assert device_for("gpu-host-3", 1, ["0", "1"], None) == "1"
    assert device_for("worker", 1, ["5", "6"], None) == "5"
    assert device_for("2", 1, ["0", "1"], "7") == "7"
    assert device_for("2", 1, [], None) == ""


def test_local_cluster_sizing():
    """CPU: n workers share the cores; GPU: one worker per GPU with resource GPU=1."""
    cpu = local_cluster_kwargs(2, 0, cores=8)
    assert (cpu["n_workers"], cpu["threads_per_worker"], cpu["processes"]) == (2, 1, True)
    assert cpu["env"]["CRYPTOFLOW_WORKER_THREADS"] == "4" and "resources" not in cpu
    assert "tasks.dask_worker" in cpu["preload"] and cpu["host"] == "127.0.0.1"
    gpu = local_cluster_kwargs(None, 2, cores=16)
    assert gpu["n_workers"] == 2 and gpu["resources"] == {"GPU": 1}
    assert local_cluster_kwargs(None, 0, cores=1)["n_workers"] == 1
    with pytest.raises(ValueError):
        local_cluster_kwargs(0, 0, cores=2)
    with pytest.raises(ValueError):
        local_cluster_kwargs(None, -1, cores=2)


def test_make_task_runner_kinds_and_bad_input():
    from prefect.task_runners import ProcessPoolTaskRunner, ThreadPoolTaskRunner
    from prefect_dask import DaskTaskRunner

    assert isinstance(make_task_runner("thread", n_workers=2), ThreadPoolTaskRunner)
    assert isinstance(make_task_runner(RunnerKind.PROCESS, n_workers=2), ProcessPoolTaskRunner)
    remote = make_task_runner("dask", "tcp://127.0.0.1:8786")
    assert isinstance(remote, DaskTaskRunner) and remote.address == "tcp://127.0.0.1:8786"
    local = make_task_runner("dask", n_workers=2)
    assert local.cluster_kwargs["n_workers"] == 2
    for bad in ("127.0.0.1:8786", "tcp://", "tcp://:8786", "tcp://a b:1", "http://x:1"):
        with pytest.raises(ValueError):
            validate_address(bad)
    with pytest.raises(ValueError):
        make_task_runner("thread", "tcp://127.0.0.1:8786")
    with pytest.raises(ValueError):
        make_task_runner("spark")


# ---------------------------------------------------------------- slow: real clusters


@pytest.fixture(scope="module")
def window_file(tmp_path_factory) -> Path:
    """A small real window file (recorded Poloniex 5m candles, N=64, K=4)."""
    sys.path.insert(0, str(REPO_ROOT / "tests"))
    from tests.support.windows import write_real_windows

    path = tmp_path_factory.mktemp("dask-windows") / "windows.h5"
    return write_real_windows(path, past=64, future=4, stride=4, rows=3000)


@pytest.fixture(scope="module")
def reference(window_file, tmp_path_factory) -> dict[str, pd.DataFrame]:
    """Histories of the local process path: one ``run_worker`` process per model."""
    root = tmp_path_factory.mktemp("dask-reference")
    slot = Slot("cpu-0", "", THREADS, False)
    out = {}
    for m in MODELS:
        job = {"kind": "train", "dataset_path": str(window_file), "model": m,
               "run_dir": str(root / m), **OPTIONS}
        result = run_worker(job, slot)
        out[m] = pd.read_csv(result["history"])
    return out


@flow(name="zoo-on-runner")
def zoo_on_runner(kind: str, address: str | None, dataset: str, root: str) -> dict[str, Any]:
    """Train MODELS for one epoch on a runner of ``kind`` (at ``address``); model -> result."""
    runner = make_task_runner(kind, address, n_workers=2)
    results = train_on_runner(runner, MODELS, dataset, {m: f"{root}/{m}" for m in MODELS},
                              dict(OPTIONS))
    failed = {m: r for m, r in results.items() if isinstance(r, BaseException)}
    if failed:
        raise RuntimeError(f"training failed: {failed}")
    return results


def assert_same_histories(results: dict[str, Any], reference: dict[str, pd.DataFrame]) -> None:
    """Same epochs, same loss and val_loss, bit for bit."""
    for m in MODELS:
        got = pd.read_csv(results[m]["history"])
        want = reference[m]
        assert got["epoch"].tolist() == want["epoch"].tolist() == [1]
        assert got["loss"].tolist() == want["loss"].tolist(), m
        assert got["val_loss"].tolist() == want["val_loss"].tolist(), m
        assert results[m]["n_checkpoints"] == 1 and Path(results[m]["best_checkpoint"]).is_file()


@pytest.mark.slow
def test_zoo_on_local_cluster_equals_local_run(prefect_api, window_file, reference, tmp_path):
    """A LocalCluster of two single-threaded worker processes, pinned to CPU by the preload."""
    results = zoo_on_runner("dask", None, str(window_file), str(tmp_path))
    assert_same_histories(results, reference)
    assert {r["devices"] for r in results.values()} == {""}  # pinned: no GPU visible
    assert {r["worker"] for r in results.values()} <= {"0", "1"}  # ran on the cluster's workers


@task
def where_am_i(i: int) -> dict[str, Any]:
    """The Dask worker running this task and the devices it was pinned to."""
    import os

    from distributed import get_worker

    return {"i": i, "worker": str(get_worker().name), "pinned": os.environ.get(PINNED_ENV)}


@flow(name="gpu-annotated")
def annotated_tasks(address: str, n: int) -> list[dict[str, Any]]:
    """Submit ``n`` trivial tasks asking for one GPU each."""
    runner = make_task_runner("dask", address)
    with runner:
        with gpu_resources(True):
            futures = [runner.submit(where_am_i, parameters={"i": i}) for i in range(n)]
        return [f.result() for f in futures]


@pytest.fixture
def dask_cluster(tmp_path):
    """``dask scheduler`` + a CPU worker + a worker with ``--resources GPU=1``, on 127.0.0.1."""
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = base_env(tmp_path / "prefect-home", CRYPTOFLOW_WORKER_THREADS=str(THREADS),
                   OMP_NUM_THREADS=str(THREADS), PYTHONPATH=str(REPO_ROOT))
    (tmp_path / "prefect-home").mkdir()
    dask = str(VENV_BIN / "dask")
    common = ["--nthreads", "1", "--nworkers", "1", "--host", "127.0.0.1", "--no-dashboard",
              "--preload", "tasks.dask_worker"]
    with background([dask, "scheduler", "--host", "127.0.0.1", "--port", str(port),
                     "--no-dashboard"], env, tmp_path / "scheduler.log", cwd=REPO_ROOT), \
         background([dask, "worker", address, "--name", "cpu-0", *common], env,
                    tmp_path / "worker-cpu.log", cwd=REPO_ROOT), \
         background([dask, "worker", address, "--name", "gpu-0", "--resources", "GPU=1",
                     *common], env, tmp_path / "worker-gpu.log", cwd=REPO_ROOT):
        wait_workers(address, 2, timeout=120)
        yield address


def wait_workers(address: str, n: int, timeout: float) -> None:
    """Wait until ``n`` workers are connected to the scheduler at ``address``."""
    from distributed import Client

    deadline = time.monotonic() + timeout
    with Client(address, timeout=timeout) as client:
        while len(client.scheduler_info(n_workers=-1)["workers"]) < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"fewer than {n} Dask workers at {address}")
            time.sleep(0.3)


@pytest.mark.slow
def test_zoo_on_separate_scheduler_and_workers(prefect_api, window_file, reference, tmp_path,
                                               dask_cluster):
    """Against `dask scheduler` + `dask worker` processes: the same histories; training and
    other GPU-annotated tasks run only on the worker started with `--resources GPU=1`; every
    worker is pinned (here to no GPU: the host has none)."""
    results = zoo_on_runner("dask", dask_cluster, str(window_file), str(tmp_path / "runs"))
    assert_same_histories(results, reference)
    # The cluster offers a GPU resource, so each training task asked for one: all on gpu-0.
    assert {r["worker"] for r in results.values()} == {"gpu-0"}
    placed = annotated_tasks(dask_cluster, 4)
    assert sorted(p["i"] for p in placed) == [0, 1, 2, 3]
    assert {p["worker"] for p in placed} == {"gpu-0"}
    assert {p["pinned"] for p in placed} == {""}  # GPU=1 but no GPU on this host: none visible
