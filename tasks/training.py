"""Train one zoo model on one window file into the run store, resumably, one checkpoint per epoch.

``train_model(dataset_path, model, run_dir, ...)`` writes ``spec.json``, then per epoch (numbered
from 1): the checkpoint ``checkpoints/epoch-XXX-<val_loss>.keras`` (model + optimizer state),
*then* the ``history.csv`` row, both atomically; ``result.json`` when done. A re-run continues
after the last recorded epoch from its checkpoint and never records an epoch twice.

Each epoch is one ``model.fit(initial_epoch=e-1, epochs=e)`` over an in-memory ``tf.data``
pipeline whose order is a permutation keyed on (seed, epoch), so a resumed run sees the same
batches as an uninterrupted one. Early stopping is decided from the recorded history, so it
survives a resume too.

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
#: Defaults chosen by measurement (bench/train.py): see the module docstring of bench/train.py.
DEFAULT_STEPS_PER_EXECUTION = 16
DEFAULT_JIT_COMPILE = False


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


def _epoch_dataset(tf: Any, x: np.ndarray, y: np.ndarray, order: np.ndarray, batch: int) -> Any:
    """An in-memory tf.data pipeline of one epoch's batches in ``order``."""
    ds = tf.data.Dataset.from_tensor_slices((x[order], y[order])).batch(batch)
    return ds.prefetch(tf.data.AUTOTUNE)


# ---------------------------------------------------------------- training


@dataclass(frozen=True)
class TrainOptions:
    """How to train (stored in ``spec.json``; the spec's identity excludes ``epochs``)."""

    epochs: int = 100
    batch_size: int = 8
    seed: int = 0
    checkpoints: CheckpointMode = CheckpointMode.EVERY
    patience: int | None = None  # early stopping on val_loss; None = off
    jit_compile: bool = DEFAULT_JIT_COMPILE
    steps_per_execution: int = DEFAULT_STEPS_PER_EXECUTION
    learning_rate: float = 0.001

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
    jit_compile: bool = DEFAULT_JIT_COMPILE,
    steps_per_execution: int = DEFAULT_STEPS_PER_EXECUTION,
    learning_rate: float = 0.001,
    threads: int | None = None,
    on_epoch: EpochCallback | None = None,
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
    with contextlib.suppress(Exception):
        tf.config.experimental.enable_op_determinism()
    fresh = build_model(model, arrays.past, arrays.future, arrays.n_features, spec_obj)

    md.path.mkdir(parents=True, exist_ok=True)
    md.write_spec(record)
    start, checkpoint = _resume_point(md)
    if checkpoint is not None:
        net = keras.saving.load_model(checkpoint, compile=True, safe_mode=True)
    else:
        net = fresh
        compile_model(net, jit_compile=opts.jit_compile,
                      steps_per_execution=opts.steps_per_execution,
                      learning_rate=opts.learning_rate)
    history = md.read_history()
    val_losses = history["val_loss"].tolist()
    stopped = _stopped_early(val_losses, opts.patience)
    if start < opts.epochs and not stopped:
        md.clear_result()
    val_ds = tf.data.Dataset.from_tensor_slices((arrays.x_val, arrays.y_val)).batch(
        max(opts.batch_size, 256)
    )
    n = len(arrays.x_train)
    epoch = start
    while epoch < opts.epochs and not stopped:
        epoch += 1
        t0 = time.perf_counter()
        order = epoch_order(n, opts.seed, epoch)
        train_ds = _epoch_dataset(tf, arrays.x_train, arrays.y_train, order, opts.batch_size)
        fit = net.fit(train_ds, validation_data=val_ds, initial_epoch=epoch - 1, epochs=epoch,
                      verbose=0, shuffle=False)
        loss = float(fit.history["loss"][-1])
        val_loss = float(fit.history["val_loss"][-1])
        seconds = time.perf_counter() - t0
        if opts.checkpoints is not CheckpointMode.NONE:
            _save_checkpoint(net, md, epoch, val_loss)
        md.append_history(epoch, loss, val_loss, seconds)
        _prune_checkpoints(md, opts.checkpoints, keep_latest=True)
        val_losses.append(val_loss)
        stopped = _stopped_early(val_losses, opts.patience)
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
            from tasks.sweep_worker import run_sweep_setting

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
