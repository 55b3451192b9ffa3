"""Benchmark: the zoo on a two-worker Dask LocalCluster against the local process runner.

Both train the same models, epochs and seed on the same real window file (recorded Poloniex
5-minute candles) inside a Prefect flow against a temporary Prefect API:

* ``local``: ``flows.train.train(parallel=2, devices="cpu")``, the zoo's own path (a thread per
  model driving one training process each, two at a time, ``cores // 2`` threads each);
* ``dask``: ``flows.runners.train_on_runner`` on ``make_task_runner("dask", n_workers=2)``, a
  LocalCluster of two single-threaded worker processes (cluster start-up included).

The histories of both are checked equal (same seed, same numbers). Then the scheduling overhead
per task: ``n`` trivial Prefect tasks submitted from one flow to a ThreadPoolTaskRunner and to
the Dask LocalCluster, and the same trivial function through plain ``distributed`` (no Prefect).
Every figure is printed with its ratio to the baseline measured in the same run.

Run: ``.venv/bin/python bench/dask.py`` (``--quick``: two models, one epoch, fewer tasks).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# This file is bench/dask.py: keep its folder off sys.path or it would shadow the dask package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="bench-dask-prefect-"))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "ERROR")

import logging  # noqa: E402

import distributed  # noqa: E402, F401 - configures its loggers on import; quiet them after
from prefect import flow, task  # noqa: E402

from tasks.training.runtime import quiet_tensorflow_env  # noqa: E402

quiet_tensorflow_env()

# The in-process scheduler and nannies log every start and stop at INFO: keep the figures readable.
logging.getLogger("distributed").setLevel(logging.WARNING)

MODELS = ["cnn2_relu", "cnn2_leaky", "cnn3_relu", "gru_tanh_relu"]


def window_file(folder: Path) -> Path:
    """A real window file: recorded Poloniex 5m candles, N=64, K=4, stride 2."""
    from test_training_windows import write_real_windows

    return write_real_windows(folder / "windows.h5", past=64, future=4, stride=2, rows=6000)


def run_local(dataset: Path, data_dir: Path, models: list[str], epochs: int) -> dict[str, Path]:
    """The zoo's own local path: ``flows.train.train`` with two processes at once."""
    from flows.train import train
    from storage.layout import DataLayout
    from storage.runs import RunStore

    run_id = train(models=models, epochs=epochs, batch_size=64, parallel=2, devices="cpu",
                   dataset=str(dataset), data_dir=str(data_dir), seed=3, patience=None)
    store = RunStore(DataLayout.at(str(data_dir)).runs)
    return {m: store.model_dir(run_id, m) / "history.csv" for m in models}


@flow(name="bench-zoo-dask")
def zoo_dask(dataset: str, root: str, models: list[str], epochs: int) -> dict[str, str]:
    """The same zoo on a two-worker LocalCluster; model -> history path."""
    from flows.runners import make_task_runner, train_on_runner

    options = {"epochs": epochs, "batch_size": 64, "seed": 3, "patience": None,
               "checkpoints": "every"}
    results = train_on_runner(make_task_runner("dask", n_workers=2), models, dataset,
                              {m: f"{root}/{m}" for m in models}, options)
    bad = {m: r for m, r in results.items() if isinstance(r, BaseException)}
    if bad:
        raise RuntimeError(f"training failed: {bad}")
    return {m: r["history"] for m, r in results.items()}


@task
def noop(i: int) -> int:
    """A trivial task."""
    return i


@flow(name="bench-overhead")
def many_tasks(kind: str, n: int) -> float:
    """Submit ``n`` trivial tasks to a runner of ``kind``; seconds from first submit to last result
    (runner start-up excluded)."""
    from flows.runners import make_task_runner

    runner = make_task_runner(kind, n_workers=2)
    with runner:
        if kind == "dask":
            runner.client.wait_for_workers(2)
        runner.submit(noop, parameters={"i": -1}).result()  # warm
        t0 = time.perf_counter()
        futures = [runner.submit(noop, parameters={"i": i}) for i in range(n)]
        total = sum(f.result() for f in futures)
        seconds = time.perf_counter() - t0
    assert total == n * (n - 1) // 2
    return seconds


def plain_dask(n: int) -> float:
    """``n`` trivial functions through plain distributed on a two-worker LocalCluster."""
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None, host="127.0.0.1") as cluster, Client(cluster) as c:
        c.submit(abs, -1).result()
        t0 = time.perf_counter()
        futures = [c.submit(abs, -i, pure=False) for i in range(n)]
        c.gather(futures)
        return time.perf_counter() - t0


def same_histories(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two runs recorded the same loss and val_loss for every model."""
    import pandas as pd

    cols = ["epoch", "loss", "val_loss"]
    return all(pd.read_csv(a[m])[cols].equals(pd.read_csv(b[m])[cols]) for m in a)


def cluster_start_stop() -> float:
    """Seconds to start a two-worker LocalCluster (workers ready, plugin registered) and stop it."""
    from flows.runners import make_task_runner, pin_devices

    t0 = time.perf_counter()
    runner = make_task_runner("dask", n_workers=2)
    with runner:
        runner.client.wait_for_workers(2)
        pin_devices(runner)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--reps", type=int, default=2, help="interleaved repetitions of the zoo")
    parser.add_argument("--tasks", type=int, default=None, help="trivial tasks per runner")
    args = parser.parse_args()
    models = MODELS[:2] if args.quick else MODELS
    epochs = 1 if args.quick else 2
    n = args.tasks or (100 if args.quick else 300)

    from prefect.testing.utilities import prefect_test_harness

    with tempfile.TemporaryDirectory() as tmp, prefect_test_harness(server_startup_timeout=120):
        folder = Path(tmp)
        dataset = window_file(folder)
        print(f"zoo: {len(models)} models x {epochs} epoch(s), {os.cpu_count()} cores, "
              f"{args.reps} interleaved rep(s)")
        times: dict[str, list[float]] = {"local": [], "dask": []}
        equal = True
        for rep in range(args.reps):
            t0 = time.perf_counter()
            local = run_local(dataset, folder / f"local-{rep}", models, epochs)
            times["local"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            remote = zoo_dask(str(dataset), str(folder / f"dask-{rep}"), models, epochs)
            times["dask"].append(time.perf_counter() - t0)
            equal = equal and same_histories(local, remote)
        t_local, t_dask = statistics.median(times["local"]), statistics.median(times["dask"])
        start_stop = cluster_start_stop()
        runs = ", ".join(f"{t:.1f}" for t in times["local"])
        print(f"  local process runner (parallel=2): {t_local:7.1f} s   1.00x   ({runs})")
        runs = ", ".join(f"{t:.1f}" for t in times["dask"])
        print(f"  Dask LocalCluster (2 workers):     {t_dask:7.1f} s   {t_dask / t_local:.2f}x"
              f"   ({runs}); histories equal: {equal}")
        print(f"    of which cluster start + stop:   {start_stop:7.1f} s   "
              f"{start_stop / t_local:.2f}x")

        print(f"scheduling overhead, {n} trivial tasks, per task:")
        thread = many_tasks("thread", n) / n
        dask = many_tasks("dask", n) / n
        raw = plain_dask(n) / n
        print(f"  Prefect ThreadPoolTaskRunner:      {thread * 1e3:7.2f} ms  1.00x")
        print(f"  Prefect DaskTaskRunner (2 procs):  {dask * 1e3:7.2f} ms  {dask / thread:.2f}x")
        print(f"  plain distributed (no Prefect):    {raw * 1e3:7.2f} ms  {raw / thread:.2f}x")


if __name__ == "__main__":
    main()
