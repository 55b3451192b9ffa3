"""The GPU figures, on a host with JAX (or PyTorch) but no TensorFlow, Prefect or pydantic.

Imports only the training path (``tasks.training``: loop, worker processes, slots) and the
window writer; each model trains in its own worker process exactly as the ``train`` flow runs
it (``run_worker``), on the backend ``--backend`` (default ``$KERAS_BACKEND`` or jax). Three parts:

1. ``models``: seconds per epoch (median of epochs 2..E) of CNN-3, LSTM and GRU at the tutorial
   settings (N=256 -> K=16 non-overlapping windows, batch 8), beside the tutorial's reported
   2 / 45 / 40 s per epoch on its GPU.
2. ``zoo``: the whole tutorial zoo (10 models, ``--zoo-epochs``, 100 by default) at 1 model per
   GPU and at ``--per-gpu`` N per GPU: wall time of each and the throughput ratio.
3. ``honest``: the honest stride-1 zoo (every window of the Bitfinex 5-minute 2015-2017 series,
   about 280 k) at N per GPU with the flows' defaults (epochs, batch size, early stopping),
   read from ``flows/params.py`` without importing it.

``--cpu`` runs the same on the CPU (the tests do, with tiny epochs, Prefect blocked).
Run: ``bash bench/gpu.sh`` on the host; here ``python bench/gpu_train.py --cpu --epochs 2``.
"""

from __future__ import annotations

import argparse
import ast
import os
import queue
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SHARED = Path(os.environ.get("CRYPTO_SHARED_DATA", REPO.parent / "shared" / "data"))
BITFINEX_5M = SHARED / "bitfinex-BTCUSD-5m-2015--2017.csv.gz"
#: The tutorial's reported seconds per epoch on its GPU (README: CNN 2 s, LSTM 45 s, GRU 40 s).
TUTORIAL_GPU_SECONDS = {"cnn3_leaky": 2.0, "lstm_tanh_leaky": 45.0, "gru_tanh_leaky": 40.0}


def flow_defaults(names: tuple[str, ...]) -> dict[str, Any]:
    """Module-level constants of ``flows/params.py`` (read, not imported: it needs pydantic)."""
    tree = ast.parse((REPO / "flows" / "params.py").read_text())
    found: dict[str, Any] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 \
                and isinstance(node.targets[0], ast.Name) and node.targets[0].id in names:
            found[node.targets[0].id] = ast.literal_eval(node.value)
    return found


def write_windows(path: Path, protocol: str, stride: int | None) -> Path:
    """Windows of the Bitfinex 5-minute series (N=256 -> K=16, close) at ``path``."""
    from storage.recorded import load_recorded
    from storage.version import DATA_FORMAT_VERSION
    from storage.windows.writer import write_window_file
    from tasks.windows.plan import plan_windows
    from tasks.windows.spec import WindowSpec

    candles = load_recorded(BITFINEX_5M)
    spec = WindowSpec(protocol=protocol, past=256, future=16, stride=stride)
    plan = plan_windows(candles, "MINUTE_5", spec)
    attrs = {"past": 256, "future": 16, "stride": spec.stride, "features": '["close"]',
             "protocol": protocol, "scaler": plan.scaler.to_json(), "target_feature": 0,
             "dataset_id": path.stem, "symbol": "BTC_USD", "interval": "MINUTE_5",
             "code_version": DATA_FORMAT_VERSION, "candle_fingerprint": "bench",
             "time_unit": plan.time_unit}
    return write_window_file(path, plan.arrays, 256, 16, attrs)


def slots_for(per_gpu: int, cpu: bool, jobs: int) -> list[Any]:
    from tasks.training.slots import available_cores, detect_gpus, gpu_free_memory_mb, plan_slots

    cores = available_cores()
    if cpu:
        return plan_slots("cpu", per_gpu, cores, [], jobs)
    gpus = detect_gpus()
    return plan_slots("gpu:0", None, cores, gpus, jobs, per_gpu, gpu_free_memory_mb())


def train_all(jobs: list[dict[str, Any]], slots: list[Any]) -> tuple[float, list[dict]]:
    """Run ``jobs`` on ``slots`` (one thread per slot, as the flow's slot queue does)."""
    from tasks.training.worker import run_worker

    todo: queue.Queue[dict[str, Any]] = queue.Queue()
    for job in jobs:
        todo.put(job)
    results: list[dict[str, Any]] = []
    errors: list[BaseException] = []

    def drain(slot: Any) -> None:
        while True:
            try:
                job = todo.get_nowait()
            except queue.Empty:
                return
            try:
                results.append(run_worker(job, slot))
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=drain, args=(s,)) for s in slots]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError(f"{len(errors)} training(s) failed: {errors[0]}") from errors[0]
    return time.perf_counter() - t0, results


def job(model: str, path: Path, run_dir: Path, backend: str, **options: Any) -> dict[str, Any]:
    from tasks.training.worker import train_job

    return {**train_job(model, str(path), str(run_dir / model), options), "backend": backend}


def part_models(path: Path, work: Path, backend: str, epochs: int, cpu: bool,
                models: list[str]) -> None:
    from storage.runs import ModelDir

    print(f"\n== seconds per epoch at the tutorial settings (batch 8), {backend}, "
          f"median of epochs 2..{epochs}", flush=True)
    print(f"{'model':<18} {'s/epoch':>8} {'tutorial GPU s':>14} {'speed-up':>9} {'val_loss':>10}")
    for model in models:
        run = work / f"models-{model}"
        train_all([job(model, path, run, backend, epochs=epochs, batch_size=8, seed=0)],
                  slots_for(1, cpu, 1))
        secs = ModelDir(run / model).read_history()["seconds"].to_numpy()
        s = float(np.median(secs[1:] if len(secs) > 1 else secs))
        ref = TUTORIAL_GPU_SECONDS.get(model, float("nan"))
        val = float(ModelDir(run / model).read_history()["val_loss"].iloc[-1])
        print(f"{model:<18} {s:>8.3f} {ref:>14.0f} {ref / s:>8.0f}x {val:>10.3e}", flush=True)


def part_zoo(path: Path, work: Path, backend: str, epochs: int, per_gpu: list[int],
             cpu: bool, models: list[str]) -> None:
    print(f"\n== the tutorial zoo ({len(models)} models x {epochs} epochs, batch 8), {backend}",
          flush=True)
    walls: dict[int, float] = {}
    for per in per_gpu:
        slots = slots_for(per, cpu, len(models))
        wall, _ = train_all([job(m, path, work / f"zoo-{per}", backend, epochs=epochs,
                                 batch_size=8, seed=0) for m in models], slots)
        walls[per] = wall
        print(f"{per} per {'GPU' if not cpu else 'CPU run'} ({len(slots)} slots): "
              f"{wall:.1f} s", flush=True)
    if len(walls) > 1:
        one, most = walls[min(walls)], walls[max(walls)]
        print(f"throughput {max(walls)} vs {min(walls)} per GPU: {one / most:.2f}x "
              "(target >= 4x on the GPU host; tutorial zoo target <= 60 s)", flush=True)


def part_honest(work: Path, backend: str, per: int, cpu: bool, models: list[str],
                epochs: int | None) -> None:
    from storage.runs import ModelDir

    d = flow_defaults(("DEFAULT_EPOCHS", "DEFAULT_BATCH_SIZE", "DEFAULT_PATIENCE"))
    epochs = epochs or d["DEFAULT_EPOCHS"]
    t0 = time.perf_counter()
    path = write_windows(work / "honest-stride1.h5", "honest", 1)
    made = time.perf_counter() - t0
    from tasks.training.arrays import read_training_arrays

    a = read_training_arrays(path, models[0])
    print(f"\n== the honest stride-1 zoo: {len(a.x_train)} training + {len(a.x_val)} validation "
          f"windows (written in {made:.0f} s); {len(models)} models, <= {epochs} epochs, batch "
          f"{d['DEFAULT_BATCH_SIZE']}, patience {d['DEFAULT_PATIENCE']}, {per} per GPU, {backend}",
          flush=True)
    slots = slots_for(per, cpu, len(models))
    wall, results = train_all([job(m, path, work / "honest", backend, epochs=epochs,
                                   batch_size=d["DEFAULT_BATCH_SIZE"], seed=0,
                                   patience=d["DEFAULT_PATIENCE"]) for m in models], slots)
    for r in sorted(results, key=lambda r: r["model"]):
        h = ModelDir(Path(r["run_dir"])).read_history()
        print(f"{r['model']:<18} epochs {r['epochs_completed']:>3} "
              f"s/epoch {float(h['seconds'].median()):>7.2f} best val_loss "
              f"{r['best_val_loss']:.3e}", flush=True)
    print(f"honest zoo wall time: {wall:.1f} s (target <= 600 s on the GPU host)", flush=True)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backend", default=os.environ.get("KERAS_BACKEND") or "jax")
    p.add_argument("--parts", default="models,zoo,honest")
    p.add_argument("--epochs", type=int, default=5, help="epochs of part 1")
    p.add_argument("--zoo-epochs", type=int, default=100)
    p.add_argument("--honest-epochs", type=int, default=None, help="default: the flows'")
    p.add_argument("--per-gpu", default="1,8", help="models per GPU compared in part 2")
    p.add_argument("--models", default="all", help="models of parts 2 and 3")
    p.add_argument("--dataset", default=None, help="window file for parts 1-2")
    p.add_argument("--cpu", action="store_true", help="run on the CPU (hides the GPUs)")
    args = p.parse_args(argv)
    from tasks.training.backends import require_installed, validate_backend
    from tasks.zoo import MODEL_NAMES

    backend = require_installed(validate_backend(args.backend))
    if args.cpu:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    parts = [x.strip() for x in args.parts.split(",") if x.strip()]
    models = MODEL_NAMES if args.models == "all" else args.models.split(",")
    per_gpu = [int(x) for x in args.per_gpu.split(",")]
    with tempfile.TemporaryDirectory(prefix="bench-gpu-") as tmp:
        work = Path(tmp)
        path = Path(args.dataset) if args.dataset else None
        if path is None and {"models", "zoo"} & set(parts):
            if not BITFINEX_5M.exists():
                sys.exit(f"{BITFINEX_5M} not found: pass --dataset or set CRYPTO_SHARED_DATA")
            path = write_windows(work / "tutorial.h5", "seed", None)
        print(f"backend {backend}; windows {path}; {os.cpu_count()} cores", flush=True)
        if "models" in parts:
            part_models(path, work, backend, args.epochs, args.cpu,
                        [m for m in TUTORIAL_GPU_SECONDS if m in models] or models[:1])
        if "zoo" in parts:
            part_zoo(path, work, backend, args.zoo_epochs, per_gpu, args.cpu, models)
        if "honest" in parts:
            part_honest(work, backend, max(per_gpu), args.cpu, models, args.honest_epochs)


if __name__ == "__main__":
    main()
