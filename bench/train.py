"""Training speed: each zoo model per epoch against a faithful tutorial-style baseline, and the
whole zoo trained in parallel against serially. Figures are ratios measured in this same run.

Windows: the tutorial's setting (``seed`` protocol: non-overlapping N=256 -> K=16 close windows,
80/20 split) cut from the Bitfinex 5-minute 2015-2017 series in ../shared/data (the stand-in for
the tutorial's Poloniex data), or ``--dataset PATH``.

1. Per model: baseline = the tutorial's loop (``model.fit`` on NumPy arrays, batch 8, shuffle,
   TensorFlow defaults, ``CSVLogger`` + a checkpoint every epoch) vs
   ``tasks.training.loop.train_model`` (same architecture, batch 8, its default pipeline:
   several steps per graph call, XLA for the recurrent models on CPU, checkpoint + history every
   epoch). Time per epoch is the median over
   epochs 2..E (epoch 1 holds tracing/compilation); final val_loss of both is printed.
2. Zoo: ``flows.train.train`` with ``--parallel 1`` (serial; 2 threads) vs ``--parallel 2``
   (2 processes, 1 thread each) at the tutorial settings (batch 8, no early stopping), wall
   time of the flow (Prefect API started beforehand), on
   ``--zoo-backend`` (default: the configured backend).
3. ``--backends tensorflow,jax,torch``: per model, seconds per epoch of ``train_model`` on each
   backend side by side (each in its own worker process, as the flows run it; rounds
   alternate the backends' order).

Run: ``.venv/bin/python bench/train.py [--epochs 4] [--models all] [--zoo-epochs 2] [--skip-zoo]``
(CPU only unless ``--gpu``; ``bench/gpu.sh`` runs the GPU figures next to the tutorial's).
The machine may be shared: the script prints the load average before and after each part.

Measured 2026-11-27 on the 2-core build machine (shared; load average 4-10 during part 1):
per-model speed-up 1.3x-4.0x (CNNs 1.6-4.0x, LSTM 1.3/1.8x, GRU 2.2/3.1x; 4 epochs, 2 rounds);
zoo parallel 2 / serial = 0.60 with 6 epochs (load < 1.5), 0.80 with 2 epochs (start-up bound).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

from tasks.training.runtime import quiet_tensorflow_env  # noqa: E402

quiet_tensorflow_env()
SHARED = Path(os.environ.get("CRYPTO_SHARED_DATA", REPO.parent / "shared" / "data"))
BITFINEX_5M = SHARED / "bitfinex-BTCUSD-5m-2015--2017.csv.gz"


def tutorial_windows(path: Path) -> Path:
    """The tutorial's window set (seed protocol, N=256, K=16, close) at ``path``."""
    from storage.recorded import load_recorded
    from storage.version import DATA_FORMAT_VERSION
    from storage.windows import write_window_file
    from tasks.windows import WindowSpec, plan_windows

    candles = load_recorded(BITFINEX_5M)
    spec = WindowSpec(protocol="seed", past=256, future=16)
    plan = plan_windows(candles, "MINUTE_5", spec)
    attrs = {"past": 256, "future": 16, "stride": spec.stride, "features": '["close"]',
             "protocol": "seed", "scaler": plan.scaler.to_json(), "target_feature": 0,
             "dataset_id": path.stem, "symbol": "BTC_USDT", "interval": "MINUTE_5",
             "code_version": DATA_FORMAT_VERSION, "candle_fingerprint": "bench",
             "time_unit": plan.time_unit}
    return write_window_file(path, plan.arrays, 256, 16, attrs)


def load(path: Path, model: str) -> tuple[np.ndarray, ...]:
    from tasks.training.arrays import read_training_arrays

    a = read_training_arrays(path, model)
    return a.x_train, a.y_train, a.x_val, a.y_val


def baseline_epochs(path: Path, model: str, epochs: int, workdir: Path) -> tuple[float, float]:
    """The tutorial's loop; returns (median seconds per epoch over epochs 2.., final val_loss)."""
    import keras

    from tasks.training.runtime import import_tensorflow, set_op_determinism
    from tasks.zoo import build_model

    tf = import_tensorflow()
    set_op_determinism(tf, False)  # TensorFlow defaults
    x, y, xv, yv = load(path, model)
    keras.utils.set_random_seed(0)
    net = build_model(model, x.shape[1], y.shape[1], x.shape[2])
    net.compile(loss="mse", optimizer="adam")
    times: list[float] = []

    class Clock(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.t0)

    ckpt = str(workdir / f"{model}-{{epoch:02d}}-{{val_loss:.5f}}.keras")
    fit = net.fit(x, y, batch_size=8, validation_data=(xv, yv), epochs=epochs, verbose=0,
                  callbacks=[keras.callbacks.CSVLogger(str(workdir / f"{model}.csv"), append=True),
                             keras.callbacks.ModelCheckpoint(ckpt, monitor="val_loss"), Clock()])
    return float(np.median(times[1:] or times)), float(fit.history["val_loss"][-1])


def ours_epochs(path: Path, model: str, epochs: int, workdir: Path, tag: str = ""
                ) -> tuple[float, float]:
    """``train_model`` with its defaults; returns (median s/epoch over epochs 2.., val_loss)."""
    from storage.runs import ModelDir
    from tasks.training.loop import train_model

    run_dir = workdir / f"runs{tag}" / model
    train_model(path, model, run_dir, epochs=epochs, batch_size=8, seed=0)
    h = ModelDir(run_dir).read_history()
    secs = h["seconds"].to_numpy()
    return float(np.median(secs[1:] if len(secs) > 1 else secs)), float(h["val_loss"].iloc[-1])


#: The tutorial's reported seconds per epoch on its GPU (README: CNN 2 s, LSTM 45 s, GRU 40 s).
TUTORIAL_GPU_SECONDS = {"cnn": 2.0, "lstm": 45.0, "gru": 40.0}


def per_model(path: Path, models: list[str], epochs: int, workdir: Path, rounds: int = 1
              ) -> None:
    print(f"\n== per-model epoch time, batch 8, {epochs} epochs (median of epochs 2..{epochs}),"
          f" {rounds} round(s) alternating baseline/ours (ABBA...)")
    print(f"load average {os.getloadavg()[0]:.2f}")
    print(f"{'model':<16} {'baseline s':>10} {'ours s':>8} {'speed-up':>8} "
          f"{'val_loss base':>13} {'val_loss ours':>13} {'tutorial GPU s':>14}")
    for model in models:
        base: list[tuple[float, float]] = []
        ours: list[tuple[float, float]] = []
        for r in range(rounds):
            steps = [("b", base), ("o", ours)] if r % 2 == 0 else [("o", ours), ("b", base)]
            for kind, out in steps:
                if kind == "b":
                    out.append(baseline_epochs(path, model, epochs, workdir))
                else:
                    out.append(ours_epochs(path, model, epochs, workdir, tag=str(r)))
        b_t, o_t = (float(np.median([t for t, _ in xs])) for xs in (base, ours))
        b_v, o_v = base[0][1], ours[0][1]
        ref = TUTORIAL_GPU_SECONDS[model.split("_")[0].rstrip("234")]
        print(f"{model:<16} {b_t:>10.3f} {o_t:>8.3f} {b_t / o_t:>7.2f}x {b_v:>13.3e} {o_v:>13.3e}"
              f" {ref:>14.0f}", flush=True)
    print(f"load average {os.getloadavg()[0]:.2f}")


def zoo(path: Path, models: list[str], epochs: int, workdir: Path, devices: str = "cpu",
        backend: str | None = None, parallels: list[int] | None = None) -> None:
    from prefect.testing.utilities import prefect_test_harness

    from flows.train import train

    print(f"\n== whole zoo ({len(models)} models, {epochs} epochs, batch 8, backend "
          f"{backend or 'configured'}), wall time of the train flow")
    with prefect_test_harness(server_startup_timeout=120):
        walls = {}
        for parallel in (parallels or [1, 2]) if devices == "cpu" else (1,):
            print(f"load average {os.getloadavg()[0]:.2f}")
            t0 = time.perf_counter()
            train(models=models, epochs=epochs, parallel=parallel, devices=devices,
                  dataset=str(path), data_dir=str(workdir / f"zoo{parallel}"), seed=0,
                  batch_size=8, patience=None, backend=backend)
            walls[parallel] = time.perf_counter() - t0
            print(f"--parallel {parallel}: {walls[parallel]:.1f} s", flush=True)
            zoo_breakdown(workdir / f"zoo{parallel}", walls[parallel], parallel)
    if 1 in walls and 2 in walls:
        print(f"parallel 2 / serial = {walls[2] / walls[1]:.2f} (target <= 0.65)")


def zoo_breakdown(data_dir: Path, wall: float, parallel: int) -> None:
    """Per model: seconds inside its epochs (epoch 1, with compilation, apart); the rest of the
    wall time is process start-up, imports, data loading and scheduling."""
    from storage.layout import DataLayout
    from storage.runs import ModelDir

    runs = sorted(p for p in DataLayout(data_dir).runs.iterdir() if p.is_dir())
    total = 0.0
    for model_dir in sorted(p for p in runs[-1].iterdir() if (p / "history.csv").exists()):
        sec = ModelDir(model_dir).read_history()["seconds"]
        total += float(sec.sum())
        print(f"  {model_dir.name:18s} epochs {float(sec.sum()):6.1f} s (epoch 1 "
              f"{float(sec.iloc[0]):.2f} s, median {float(sec.median()):.3f} s)")
    print(f"  sum of epochs {total:.1f} s = {total / parallel:.1f} s per slot; wall - that = "
          f"{wall - total / parallel:.1f} s (start-up, imports, loading, imbalance)")


def per_backend(path: Path, models: list[str], epochs: int, workdir: Path,
                names: list[str], rounds: int = 1) -> None:
    from storage.runs import ModelDir
    from tasks.training.slots import Slot, available_cores
    from tasks.training.worker import run_worker, train_job

    print(f"\n== per-model s/epoch of train_model per backend, batch 8, {epochs} epochs (median "
          f"of epochs 2..{epochs}, median of {rounds} round(s)); last column: val_loss")
    print(f"load average {os.getloadavg()[0]:.2f}")
    print(f"{'model':<16} " + " ".join(f"{b:>10}" for b in names) + "   val_loss")
    slot = Slot("cpu-0", "", available_cores(), False)
    for model in models:
        secs: dict[str, list[float]] = {b: [] for b in names}
        vals: dict[str, float] = {}
        for r in range(rounds):
            for b in (names if r % 2 == 0 else names[::-1]):
                run = workdir / f"be-{b}-{r}" / model
                run_worker({**train_job(model, str(path), str(run),
                                        {"epochs": epochs, "batch_size": 8, "seed": 0}),
                            "backend": b}, slot)
                h = ModelDir(run).read_history()
                t = h["seconds"].to_numpy()
                secs[b].append(float(np.median(t[1:] if len(t) > 1 else t)))
                vals[b] = float(h["val_loss"].iloc[-1])
        print(f"{model:<16} " + " ".join(f"{np.median(secs[b]):>10.3f}" for b in names)
              + "   " + " ".join(f"{vals[b]:.2e}" for b in names), flush=True)
    print(f"load average {os.getloadavg()[0]:.2f}")


def main() -> None:
    from tasks.zoo import parse_models

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default=None, help="window file (default: tutorial windows)")
    p.add_argument("--models", default="all")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--zoo-epochs", type=int, default=2)
    p.add_argument("--rounds", type=int, default=2, help="baseline/ours alternations per model")
    p.add_argument("--skip-zoo", action="store_true")
    p.add_argument("--skip-models", action="store_true")
    p.add_argument("--gpu", action="store_true", help="use the GPUs (default: CPU only)")
    p.add_argument("--backends", default=None, help="compare these backends per model")
    p.add_argument("--zoo-backend", default=None, help="backend of the zoo part")
    p.add_argument("--zoo-parallel", default="1,2", help="--parallel values of the zoo part")
    args = p.parse_args()
    if not args.gpu:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    models = parse_models(args.models)
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        work = Path(tmp)
        if args.dataset:
            path = Path(args.dataset)
        elif BITFINEX_5M.exists():
            path = tutorial_windows(work / "tutorial.h5")
        else:
            sys.exit(f"{BITFINEX_5M} not found: pass --dataset or set CRYPTO_SHARED_DATA")
        print(f"windows: {path} on {os.cpu_count()} cores")
        if not args.skip_models:
            per_model(path, models, args.epochs, work, args.rounds)
        if args.backends:
            per_backend(path, models, args.epochs, work, args.backends.split(","), args.rounds)
        if not args.skip_zoo:
            zoo(path, models, args.zoo_epochs, work, "gpu:0" if args.gpu else "cpu",
                args.zoo_backend, [int(x) for x in args.zoo_parallel.split(",")])


if __name__ == "__main__":
    main()
