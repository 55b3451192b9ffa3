"""Train one zoo model on one window file into the run store, resumably, one checkpoint per epoch.

``train_model(dataset_path, model, run_dir, ...)`` writes ``spec.json``, then per epoch (numbered
from 1): the checkpoint ``checkpoints/epoch-XXX-<val_loss>.keras`` (model + optimizer state),
*then* the ``history.csv`` row, both atomically; ``result.json`` when done. A re-run continues
after the last recorded epoch from its checkpoint and never records an epoch twice.

Each epoch is one ``model.fit(initial_epoch=e-1, epochs=e)`` over in-memory arrays in an order
keyed on (seed, epoch), with dropout RNG states also reset from (seed, epoch), so a resumed run
computes exactly what an uninterrupted one does. Early stopping is decided from the recorded
history, so it survives a resume too.

Run as ``python -m tasks.training JOB_JSON`` this module is the worker process used by the
flows: it sets devices and thread counts *before* TensorFlow is imported and prints one JSON
line per epoch (prefixed ``@@cryptoflow``) plus the final result.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np

from storage.runs import ModelDir, checkpoint_name

EVENT_PREFIX = "@@cryptoflow "
#: Defaults chosen by measurement on CPU (bench/train.py): several steps per graph call help
#: every model; XLA helps the recurrent models (~2x) and slows the tiny CNNs, so ``jit_compile``
#: defaults per family (None = :data:`JIT_BY_FAMILY`). Each epoch's shuffled arrays go in as a
#: ``tf.data`` pipeline: NumPy arrays passed to ``fit`` cost ~0.3 s of adapter set-up per call.
DEFAULT_STEPS_PER_EXECUTION = 16
JIT_BY_FAMILY = {"cnn": False, "recurrent": True}
DEFAULT_JIT_COMPILE: bool | None = None
VALIDATION_BATCH = 256


class CheckpointMode(StrEnum):
    """Which checkpoints to keep: every epoch's, the best one's, or none (sweeps)."""

    EVERY = "every"
    BEST = "best"
    NONE = "none"


# ---------------------------------------------------------------- runtime (before TF import)


def configure_environment(devices: str = "", threads: int | None = None) -> None:
    """Set device visibility and quiet logs; must run before TensorFlow is imported.

    ``devices`` is a ``CUDA_VISIBLE_DEVICES`` value ("" hides every GPU).
    """
    os.environ["CUDA_VISIBLE_DEVICES"] = devices
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
    if threads:
        os.environ["OMP_NUM_THREADS"] = str(threads)


@contextlib.contextmanager
def _stderr_muted() -> Iterator[None]:
    """Send fd 2 to a scratch file (TensorFlow's C++ start-up chatter); replay it on error."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as scratch:
        os.dup2(scratch.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            scratch.seek(0)
            sys.stderr.write(scratch.read().decode("utf-8", "replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def import_tensorflow(threads: int | None = None) -> Any:
    """Import TensorFlow quietly, set thread pools and GPU memory growth; return the module."""
    if "tensorflow" in sys.modules:
        import tensorflow as tf

        return tf
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    with _stderr_muted():
        import tensorflow as tf

        tf.get_logger().setLevel("ERROR")
        if threads:
            tf.config.threading.set_intra_op_parallelism_threads(int(threads))
            tf.config.threading.set_inter_op_parallelism_threads(int(threads))
        for gpu in tf.config.list_physical_devices("GPU"):
            with contextlib.suppress(RuntimeError, ValueError):
                tf.config.experimental.set_memory_growth(gpu, True)
    return tf


def set_op_determinism(tf: Any, enabled: bool) -> None:
    """Turn TensorFlow's op determinism on or off (process-wide).

    Keras refuses XLA while it is on, so XLA-compiled (recurrent, CPU) training turns it off and
    relies on XLA's CPU kernels being deterministic: the tests check same seed, same history.
    """
    if enabled:
        tf.config.experimental.enable_op_determinism()
        return
    from tensorflow.python.framework import config as tf_config

    tf_config.disable_op_determinism()


# ---------------------------------------------------------------- data


@dataclass(frozen=True)
class TrainingArrays:
    """Train/validation windows: x (n, N, F) float32; y (n, K, F) or (n, K) per model family."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    past: int
    future: int
    n_features: int
    target_feature: int
    dataset_id: str


def read_training_arrays(dataset_path: Path, model: str) -> TrainingArrays:
    """Train and validation arrays of a window file, shaped for ``model``'s outputs."""
    from tasks.windows import open_dataset
    from tasks.zoo import model_targets

    with open_dataset(str(dataset_path)) as ds:
        x_train, y_train = ds.split_arrays("train")
        x_val, y_val = ds.split_arrays("validation")
        attrs = dict(ds.attrs)
    if len(x_train) == 0 or len(x_val) == 0:
        raise ValueError(
            f"{dataset_path} has {len(x_train)} training and {len(x_val)} validation windows; "
            "training needs both"
        )
    target = int(attrs.get("target_feature", 0))
    return TrainingArrays(
        x_train=np.ascontiguousarray(x_train, dtype=np.float32),
        y_train=np.ascontiguousarray(model_targets(model, y_train, target), dtype=np.float32),
        x_val=np.ascontiguousarray(x_val, dtype=np.float32),
        y_val=np.ascontiguousarray(model_targets(model, y_val, target), dtype=np.float32),
        past=int(x_train.shape[1]),
        future=int(y_train.shape[1]),
        n_features=int(x_train.shape[2]),
        target_feature=target,
        dataset_id=str(attrs.get("dataset_id", Path(dataset_path).stem)),
    )


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """The shuffled window order (n,) of one epoch, fixed by (seed, epoch)."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, int(epoch)]).permutation(n)


# ---------------------------------------------------------------- training


@dataclass(frozen=True)
class TrainOptions:
    """How to train (stored in ``spec.json``; the spec's identity excludes ``epochs``)."""

    epochs: int = 100
    batch_size: int = 8
    seed: int = 0
    checkpoints: CheckpointMode = CheckpointMode.EVERY
    patience: int | None = None  # early stopping on val_loss; None = off
    jit_compile: bool | None = DEFAULT_JIT_COMPILE
    steps_per_execution: int = DEFAULT_STEPS_PER_EXECUTION
    learning_rate: float = 0.001

    def jit_for(self, model: str, gpu: bool = False) -> bool:
        """Whether to XLA-compile ``model``; unset: the CPU per-family default, off on GPUs
        (where the recurrent layers use cuDNN)."""
        from tasks.zoo import entry

        if self.jit_compile is None:
            return not gpu and JIT_BY_FAMILY[entry(model).family.value]
        return bool(self.jit_compile)

    def __post_init__(self) -> None:
        object.__setattr__(self, "checkpoints", CheckpointMode(self.checkpoints))
        if isinstance(self.epochs, bool) or int(self.epochs) != self.epochs or self.epochs < 1:
            raise ValueError(f"epochs must be a whole number >= 1, got {self.epochs!r}")
        if int(self.batch_size) != self.batch_size or self.batch_size < 1:
            raise ValueError(f"batch size must be a whole number >= 1, got {self.batch_size!r}")
        if self.patience is not None and self.patience < 1:
            raise ValueError(f"patience must be >= 1 or None, got {self.patience!r}")
        if self.steps_per_execution < 1:
            raise ValueError("steps_per_execution must be >= 1")
        if not self.learning_rate > 0:
            raise ValueError("learning_rate must be > 0")


EpochCallback = Callable[[dict[str, Any]], None]
_IDENTITY_KEYS = (
    "model", "spec", "batch_size", "seed", "dataset_id", "learning_rate", "checkpoints",
)


def _spec_record(model: str, spec_dict: dict[str, Any], opts: TrainOptions,
                 arrays: TrainingArrays, dataset_path: Path) -> dict[str, Any]:
    from tasks.zoo import entry, output_shape

    return {
        "model": model,
        "family": entry(model).family.value,
        "spec": spec_dict,
        "epochs": int(opts.epochs),
        "batch_size": int(opts.batch_size),
        "seed": int(opts.seed),
        "learning_rate": float(opts.learning_rate),
        "checkpoints": opts.checkpoints.value,
        "patience": opts.patience,
        "dataset_id": arrays.dataset_id,
        "dataset_path": str(dataset_path),
        "past": arrays.past,
        "future": arrays.future,
        "n_features": arrays.n_features,
        "target_feature": arrays.target_feature,
        "output_shape": list(output_shape(model, arrays.future, arrays.n_features)),
        "optimizer": "adam",
        "loss": "mse",
    }


def _check_resumable(old: dict[str, Any], new: dict[str, Any], where: Path) -> None:
    diff = [k for k in _IDENTITY_KEYS if old.get(k) != new.get(k)]
    if diff:
        raise ValueError(
            f"{where} already holds a different training ({', '.join(diff)} differ); "
            "use a new run id"
        )


def _reseed_layers(net: Any, seed: int, epoch: int) -> None:
    """Set every layer's dropout RNG state from (seed, epoch), so a resumed epoch equals the
    uninterrupted one (Keras does not restore seed-generator states from a checkpoint)."""
    from keras.random import SeedGenerator

    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, int(epoch), 1])
    for layer in net._flatten_layers(include_self=False):
        for value in vars(layer).values():
            if isinstance(value, SeedGenerator):
                state = value.state
                state.assign(np.array([rng.integers(1, 2**30), 0], dtype=state.dtype))


def _stopped_early(val_losses: list[float], patience: int | None) -> bool:
    """True when the last ``patience`` epochs did not improve on the best before them."""
    if patience is None or len(val_losses) <= patience:
        return False
    best_before = min(v if math.isfinite(v) else math.inf for v in val_losses[:-patience])
    recent = [v for v in val_losses[-patience:] if math.isfinite(v)]
    return not recent or min(recent) >= best_before


def _save_checkpoint(model: Any, md: ModelDir, epoch: int, val_loss: float) -> Path:
    """Save model + optimizer state as this epoch's checkpoint, atomically."""
    final = md.checkpoint_dir / checkpoint_name(epoch, val_loss)
    md.checkpoint_dir.mkdir(parents=True, exist_ok=True)
    tmp = md.partial_path(final)
    try:
        model.save(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    return final


def _prune_checkpoints(md: ModelDir, mode: CheckpointMode, keep_latest: bool) -> None:
    """Keep only what ``mode`` asks for (plus the latest while training, to resume from)."""
    if mode is CheckpointMode.EVERY:
        return
    history = md.read_history()
    files = md.checkpoint_files()
    if history.empty:
        return
    keep: set[int] = set()
    if keep_latest:
        keep.add(int(history["epoch"].iloc[-1]))
    if mode is CheckpointMode.BEST:
        finite = history[np.isfinite(history["val_loss"])]
        if len(finite):
            keep.add(int(finite.loc[finite["val_loss"].idxmin(), "epoch"]))
    for epoch, path in files.items():
        if epoch not in keep:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def _resume_point(md: ModelDir) -> tuple[int, Path | None]:
    """Last recorded epoch whose checkpoint exists, and that checkpoint (0, None: fresh start)."""
    md.discard_unrecorded()
    history = md.read_history()
    files = md.checkpoint_files()
    for epoch in sorted(history["epoch"].tolist(), reverse=True):
        if epoch in files:
            if epoch != int(history["epoch"].iloc[-1]):
                md.truncate_history(epoch)  # newer rows lost their checkpoints (mode none)
                md.discard_unrecorded()
            return int(epoch), files[epoch]
    if len(history):
        md.truncate_history(0)
    return 0, None


def validate_request(dataset_path: Path, model: str, opts: TrainOptions) -> Path:
    """Check a training request before anything is written; return the resolved dataset path."""
    from tasks.zoo import entry

    entry(model)
    path = Path(dataset_path)
    if not path.is_file():
        raise ValueError(f"window file not found: {path}")
    return path


def train_model(
    dataset_path: Path,
    model: str,
    run_dir: Path,
    epochs: int = 100,
    batch_size: int = 8,
    seed: int = 0,
    *,
    spec: Any = None,
    checkpoints: CheckpointMode | str = CheckpointMode.EVERY,
    patience: int | None = None,
    jit_compile: bool | None = DEFAULT_JIT_COMPILE,
    steps_per_execution: int = DEFAULT_STEPS_PER_EXECUTION,
    learning_rate: float = 0.001,
    threads: int | None = None,
    on_epoch: EpochCallback | None = None,
    on_epoch_model: Callable[[int, Any], None] | None = None,
    arrays: TrainingArrays | None = None,
) -> dict[str, Any]:
    """Train ``model`` on a window file into ``run_dir`` (= ``runs/<run-id>/<model>/``).

    Returns a small metrics dict (paths and numbers only). Resumes after the last recorded epoch
    when ``run_dir`` already holds the same training; raises ``ValueError`` on bad input before
    writing anything.
    """
    opts = TrainOptions(
        epochs=epochs, batch_size=batch_size, seed=seed, checkpoints=checkpoints,
        patience=patience, jit_compile=jit_compile, steps_per_execution=steps_per_execution,
        learning_rate=learning_rate,
    )
    from tasks.zoo import spec_from_dict, spec_to_dict

    dataset_path = validate_request(dataset_path, model, opts)
    spec_obj = spec if spec is not None and not isinstance(spec, dict) else spec_from_dict(
        model, spec
    )
    arrays = arrays or read_training_arrays(dataset_path, model)
    record = _spec_record(model, spec_to_dict(spec_obj), opts, arrays, dataset_path)
    tf = import_tensorflow(threads)
    import keras

    from tasks.zoo import build_model, compile_model

    md = ModelDir(Path(run_dir))
    old = md.read_spec()
    if old is not None:
        _check_resumable(old, record, md.path)
    # Build before writing anything: a shape that does not fit the architecture raises here.
    keras.utils.set_random_seed(int(seed))
    jit = opts.jit_for(model, gpu=bool(tf.config.list_physical_devices("GPU")))
    set_op_determinism(tf, not jit)
    fresh = build_model(model, arrays.past, arrays.future, arrays.n_features, spec_obj)

    md.path.mkdir(parents=True, exist_ok=True)
    md.write_spec(record)
    start, checkpoint = _resume_point(md)
    if checkpoint is not None:
        net = keras.saving.load_model(checkpoint, compile=True, safe_mode=True)
    else:
        net = fresh
        compile_model(net, jit_compile=jit,
                      steps_per_execution=opts.steps_per_execution,
                      learning_rate=opts.learning_rate)
    history = md.read_history()
    val_losses = history["val_loss"].tolist()
    stopped = _stopped_early(val_losses, opts.patience)
    if start < opts.epochs and not stopped:
        md.clear_result()
    val_ds = tf.data.Dataset.from_tensor_slices((arrays.x_val, arrays.y_val)).batch(
        max(opts.batch_size, VALIDATION_BATCH)
    )
    n = len(arrays.x_train)
    epoch = start
    while epoch < opts.epochs and not stopped:
        epoch += 1
        t0 = time.perf_counter()
        _reseed_layers(net, opts.seed, epoch)
        order = epoch_order(n, opts.seed, epoch)
        train_ds = tf.data.Dataset.from_tensor_slices(
            (arrays.x_train[order], arrays.y_train[order])
        ).batch(opts.batch_size)
        fit = net.fit(train_ds, validation_data=val_ds, initial_epoch=epoch - 1, epochs=epoch,
                      shuffle=False, verbose=0)
        loss = float(fit.history["loss"][-1])
        val_loss = float(fit.history["val_loss"][-1])
        seconds = time.perf_counter() - t0
        if opts.checkpoints is not CheckpointMode.NONE:
            _save_checkpoint(net, md, epoch, val_loss)
        md.append_history(epoch, loss, val_loss, seconds)
        _prune_checkpoints(md, opts.checkpoints, keep_latest=True)
        val_losses.append(val_loss)
        stopped = _stopped_early(val_losses, opts.patience)
        if on_epoch_model is not None:
            on_epoch_model(epoch, net)
        if on_epoch is not None:
            on_epoch({"model": model, "epoch": epoch, "epochs": opts.epochs, "loss": loss,
                      "val_loss": val_loss, "seconds": seconds})
    _prune_checkpoints(md, opts.checkpoints, keep_latest=opts.checkpoints is CheckpointMode.BEST)
    result = summarize(md, model, start, stopped, net=net, arrays=arrays)
    md.write_result(result)
    return result


def summarize(md: ModelDir, model: str, resumed_from: int, stopped_early: bool, *,
              net: Any = None, arrays: TrainingArrays | None = None) -> dict[str, Any]:
    """The metrics dict of a finished training (paths and numbers only)."""
    history = md.read_history()
    finite = history[np.isfinite(history["val_loss"])]
    best = finite.loc[finite["val_loss"].idxmin()] if len(finite) else None
    files = md.checkpoints()
    best_epoch = int(best["epoch"]) if best is not None else None
    return {
        "model": model,
        "run_dir": str(md.path),
        "history": str(md.history_path),
        "epochs_completed": len(history),
        "resumed_from_epoch": int(resumed_from),
        "stopped_early": bool(stopped_early),
        "best_epoch": best_epoch,
        "best_val_loss": float(best["val_loss"]) if best is not None else None,
        "best_checkpoint": str(files[best_epoch]) if best_epoch in files else None,
        "last_loss": float(history["loss"].iloc[-1]) if len(history) else None,
        "last_val_loss": float(history["val_loss"].iloc[-1]) if len(history) else None,
        "seconds_per_epoch": float(history["seconds"].median()) if len(history) else None,
        "n_checkpoints": len(files),
        "params": int(net.count_params()) if net is not None else None,
        "n_train": int(len(arrays.x_train)) if arrays is not None else None,
        "n_validation": int(len(arrays.x_val)) if arrays is not None else None,
    }


# ---------------------------------------------------------------- regularization sweep


def sweep_setting_name(target: str | None, kind: str | None, strength: float) -> str:
    """Folder name of a sweep setting, e.g. ``bias-l2-0.01`` (``none-none-0`` unregularized)."""
    if not strength:
        return "none-none-0"
    return f"{target}-{kind}-{strength:g}"


def validation_mse(net: Any, dataset_path: Path, model: str) -> dict[str, float]:
    """MSE of ``net`` on the validation windows, scaled and in price units (target feature)."""
    from tasks.windows import open_dataset
    from tasks.zoo import target_predictions

    with open_dataset(str(dataset_path)) as ds:
        x_val, y_val = ds.split_arrays("validation")
        _, y_orig = ds.split_originals("validation")
        target = int(ds.attrs.get("target_feature", 0))
        scaler = ds.scaler
    predicted = np.asarray(net.predict(np.asarray(x_val, np.float32), batch_size=VALIDATION_BATCH,
                                       verbose=0), dtype=np.float64)
    pred = target_predictions(model, predicted, target)
    truth_scaled = np.asarray(y_val, np.float64)[:, :, target]
    price_pred = scaler.inverse_transform(pred, feature=target)
    truth_price = np.asarray(y_orig, np.float64)[:, :, target]
    return {
        "val_mse_scaled": float(np.mean((pred - truth_scaled) ** 2)),
        "val_mse_price": float(np.mean((price_pred - truth_price) ** 2)),
    }


def run_sweep_setting(job: dict[str, Any], on_progress: EpochCallback | None = None
                      ) -> dict[str, Any]:
    """Train every repeat of one regularization setting; rows of the tidy sweep table.

    ``job``: dataset_path, model, setting_dir, target, reg_kind, strength, repeats, epochs,
    batch_size, seed. Repeat r uses seed ``seed + r`` (paired across settings). A repeat with a
    ``result.json`` is not trained again.
    """
    from tasks.zoo import spec_from_dict, spec_to_dict

    model = job["model"]
    strength = float(job["strength"])
    base = spec_from_dict(model, job.get("spec"))
    regs = (
        [{"target": job["target"], "kind": job["reg_kind"], "strength": strength}]
        if strength else []
    )
    spec = spec_from_dict(model, {**spec_to_dict(base), "regularizers": regs})
    setting_dir = Path(job["setting_dir"])
    rows = []
    for repeat in job["repeats"]:
        md = ModelDir(setting_dir / f"repeat-{int(repeat):03d}")
        done = md.read_result()
        if done is None or "val_mse_price" not in done:
            captured: dict[str, Any] = {}
            result = train_model(
                Path(job["dataset_path"]), model, md.path, epochs=int(job["epochs"]),
                batch_size=int(job["batch_size"]), seed=int(job["seed"]) + int(repeat),
                spec=spec, checkpoints=CheckpointMode.NONE, threads=job.get("threads"),
                on_epoch=on_progress,
                on_epoch_model=lambda _epoch, net, c=captured: c.__setitem__("net", net),
            )
            if "net" not in captured:  # pragma: no cover - mode none always retrains
                raise RuntimeError(f"{md.path}: no model to score")
            done = {**result, **validation_mse(captured["net"], Path(job["dataset_path"]), model)}
            md.write_result(done)
        rows.append({
            "target": job["target"], "kind": job["reg_kind"], "strength": strength,
            "repeat": int(repeat), "val_mse_scaled": done["val_mse_scaled"],
            "val_mse_price": done["val_mse_price"], "best_val_loss": done.get("best_val_loss"),
        })
    return {"setting": setting_dir.name, "rows": rows}


# ---------------------------------------------------------------- slots and worker processes


@dataclass(frozen=True)
class Slot:
    """Where one worker process runs: visible GPUs ("" = CPU only) and its thread count."""

    name: str
    devices: str
    threads: int | None
    gpu: bool


def detect_gpus() -> list[str]:
    """GPU indices listed by ``nvidia-smi -L`` (empty without NVIDIA GPUs); no TF import."""
    import shutil
    import subprocess

    exe = shutil.which("nvidia-smi")
    if exe is None:
        return []
    try:
        out = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(out.stdout.splitlines()) if line.startswith("GPU ")]


def available_cores() -> int:
    """CPU cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def plan_slots(devices: str, parallel: int | None, cores: int, gpus: list[str]) -> list[Slot]:
    """Worker slots for ``devices`` = ``auto`` | ``cpu`` | ``gpu:0,1``.

    GPUs: one slot per GPU (one model per GPU at a time). CPU: ``parallel`` slots sharing the
    cores, ``cores // parallel`` threads each.
    """
    text = (devices or "auto").strip().lower()
    if parallel is not None and parallel < 1:
        raise ValueError(f"--parallel must be >= 1, got {parallel}")
    if text == "auto":
        text = "gpu:" + ",".join(gpus) if gpus else "cpu"
    if text == "cpu":
        n = parallel or 1
        threads = max(1, cores // n)
        return [Slot(f"cpu-{i}", "", threads, False) for i in range(n)]
    if text.startswith("gpu:") or text.startswith("gpu"):
        ids = [d.strip() for d in text.partition(":")[2].split(",") if d.strip()] or gpus
        if not ids or any(not d.isdigit() for d in ids):
            raise ValueError(f"bad --devices {devices!r}: use auto, cpu or gpu:0,1")
        if not gpus:
            raise ValueError(f"--devices {devices}: no GPU found (nvidia-smi lists none)")
        missing = [d for d in ids if d not in gpus]
        if missing:
            raise ValueError(f"GPU(s) {', '.join(missing)} not found (have {', '.join(gpus)})")
        ids = list(dict.fromkeys(ids))
        if parallel is not None:
            ids = ids[: max(1, parallel)]
        threads = max(1, cores // len(ids))
        return [Slot(f"gpu-{d}", d, threads, True) for d in ids]
    raise ValueError(f"bad --devices {devices!r}: use auto, cpu or gpu:0,1")


class WorkerError(RuntimeError):
    """A training worker process failed (its stderr tail is in the message)."""


def run_worker(job: dict[str, Any], slot: Slot,
               on_event: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Run one job in a fresh Python process on ``slot``; return its result.

    The process gets ``CUDA_VISIBLE_DEVICES`` and its thread count before TensorFlow loads.
    A bad request (``ValueError`` in the worker) is raised here as ``ValueError``.
    """
    import subprocess

    job = {**job, "devices": slot.devices, "threads": slot.threads}
    env = os.environ.copy()
    env["CUDA_VISIBLE_DEVICES"] = slot.devices
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["KERAS_BACKEND"] = "tensorflow"
    if slot.threads:
        env["OMP_NUM_THREADS"] = str(slot.threads)
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    cmd = [sys.executable, "-m", "tasks.training", json.dumps(job)]
    result: dict[str, Any] | None = None
    error: str | None = None
    with tempfile.TemporaryFile(mode="w+", encoding="utf-8", errors="replace") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True, env=env,
                                cwd=root, start_new_session=True)
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                if not line.startswith(EVENT_PREFIX):
                    continue
                event = json.loads(line[len(EVENT_PREFIX):])
                if event.get("event") == "result":
                    result = event["result"]
                elif event.get("event") == "error":
                    error = event.get("error")
                elif on_event is not None:
                    on_event(event)
            rc = proc.wait()
        except BaseException:
            _kill_group(proc)
            raise
        err.seek(0)
        tail = err.read()[-4000:]
    if error is not None:
        raise ValueError(error)
    if rc != 0 or result is None:
        raise WorkerError(f"training worker exited with {rc}: {tail.strip()[-2000:]}")
    return result


def _kill_group(proc: Any) -> None:
    import signal

    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(Exception):
        proc.wait(timeout=10)


# ---------------------------------------------------------------- worker process


def _emit(event: dict[str, Any]) -> None:
    sys.stdout.write(EVENT_PREFIX + json.dumps(event) + "\n")
    sys.stdout.flush()


def worker_main(argv: list[str]) -> int:
    """Entry point of a training worker process: one JSON job argument, JSON events on stdout."""
    job = json.loads(argv[0])
    configure_environment(job.get("devices", ""), job.get("threads"))
    import_tensorflow(job.get("threads"))
    kind = job.pop("kind", "train")
    job.pop("devices", None)
    try:
        if kind == "train":
            result = train_model(
                Path(job.pop("dataset_path")), job.pop("model"), Path(job.pop("run_dir")),
                on_epoch=lambda e: _emit({"event": "epoch", **e}), **job,
            )
        elif kind == "sweep":
            result = run_sweep_setting(job, on_progress=lambda e: _emit({"event": "epoch", **e}))
        else:
            raise ValueError(f"unknown job kind {kind!r}")
    except ValueError as exc:
        _emit({"event": "error", "error": str(exc), "type": "ValueError"})
        return 2
    _emit({"event": "result", "result": result})
    return 0


if __name__ == "__main__":
    raise SystemExit(worker_main(sys.argv[1:]))
