"""Train one zoo model on one window file into the run store, resumably, one checkpoint per epoch.

``train_model(dataset_path, model, run_dir, ...)`` writes ``spec.json``, then per epoch (numbered
from 1): the checkpoint ``checkpoints/epoch-XXX-<val_loss>.keras`` (model + optimizer state),
*then* the ``history.csv`` row, both atomically; ``result.json`` when done. A re-run continues
after the last recorded epoch from its checkpoint and never records an epoch twice.

Each epoch is one ``model.fit(initial_epoch=e-1, epochs=e)`` over in-memory arrays in an order
keyed on (seed, epoch), with dropout RNG states also reset from (seed, epoch), so a resumed run
computes exactly what an uninterrupted one does. Early stopping is decided from the recorded
history, so it survives a resume too.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from storage.errors import BadInputError
from storage.runs import ModelDir
from tasks.training.arrays import TrainingArrays, epoch_order, read_training_arrays
from tasks.training.backends import runtime, validate_backend
from tasks.training.checkpoints import (
    CheckpointMode,
    prune_checkpoints,
    resume_point,
    save_checkpoint,
)
from tasks.training.runtime import import_backend

#: The tutorial's training settings (the library defaults; the flows default to flows.params).
TUTORIAL_EPOCHS = 100
TUTORIAL_BATCH_SIZE = 8
DEFAULT_SEED = 0
DEFAULT_LEARNING_RATE = 0.001
#: Defaults chosen by measurement on CPU (bench/train.py): several steps per graph call help
#: every model (torch: one, as Keras requires); ``jit_compile`` defaults per backend (None =
#: the backend's ``jit_default``: TensorFlow XLA for the recurrent models on CPU only, JAX
#: always, torch never). Each epoch's shuffled arrays go in as the backend's feed (TensorFlow:
#: a ``tf.data`` pipeline, NumPy arrays cost it ~0.3 s of adapter set-up per call; JAX/torch:
#: the NumPy arrays).
DEFAULT_STEPS_PER_EXECUTION = 16
JIT_BY_FAMILY = runtime("tensorflow").JIT_BY_FAMILY
DEFAULT_JIT_COMPILE: bool | None = None
VALIDATION_BATCH = 256


@dataclass(frozen=True)
class TrainOptions:
    """How to train (stored in ``spec.json``; the spec's identity excludes ``epochs``)."""

    epochs: int = TUTORIAL_EPOCHS
    batch_size: int = TUTORIAL_BATCH_SIZE
    seed: int = DEFAULT_SEED
    checkpoints: CheckpointMode = CheckpointMode.EVERY
    patience: int | None = None  # early stopping on val_loss; None = off
    jit_compile: bool | None = DEFAULT_JIT_COMPILE
    steps_per_execution: int = DEFAULT_STEPS_PER_EXECUTION
    learning_rate: float = DEFAULT_LEARNING_RATE

    def jit_for(self, model: str, gpu: bool = False, backend: str = "tensorflow") -> bool:
        """Whether to compile ``model``'s steps; unset: ``backend``'s default (TensorFlow:
        XLA per family on CPU, off on GPUs where the recurrent layers use cuDNN; JAX: always;
        torch: never)."""
        from tasks.zoo import entry

        if self.jit_compile is None:
            return runtime(backend).jit_default(entry(model).family.value, gpu)
        return bool(self.jit_compile)

    def __post_init__(self) -> None:
        object.__setattr__(self, "checkpoints", CheckpointMode(self.checkpoints))
        if isinstance(self.epochs, bool) or int(self.epochs) != self.epochs or self.epochs < 1:
            raise BadInputError(f"epochs must be a whole number >= 1, got {self.epochs!r}")
        if int(self.batch_size) != self.batch_size or self.batch_size < 1:
            raise BadInputError(f"batch size must be a whole number >= 1, got {self.batch_size!r}")
        if self.patience is not None and self.patience < 1:
            raise BadInputError(f"patience must be >= 1 or None, got {self.patience!r}")
        if self.steps_per_execution < 1:
            raise BadInputError("steps_per_execution must be >= 1")
        if not self.learning_rate > 0:
            raise BadInputError("learning_rate must be > 0")


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
    } | ({"residual": list(arrays.residual)} if arrays.residual is not None else {})


def _check_resumable(old: dict[str, Any], new: dict[str, Any], where: Path) -> None:
    diff = [k for k in _IDENTITY_KEYS if old.get(k) != new.get(k)]
    if diff:
        raise BadInputError(
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




def validate_request(dataset_path: Path, model: str, opts: TrainOptions) -> Path:
    """Check a training request before anything is written; return the resolved dataset path."""
    from tasks.zoo import entry

    entry(model)
    path = Path(dataset_path)
    if not path.is_file():
        raise BadInputError(f"window file not found: {path}")
    return path


def train_model(
    dataset_path: Path,
    model: str,
    run_dir: Path,
    epochs: int = TUTORIAL_EPOCHS,
    batch_size: int = TUTORIAL_BATCH_SIZE,
    seed: int = DEFAULT_SEED,
    *,
    spec: Any = None,
    checkpoints: CheckpointMode | str = CheckpointMode.EVERY,
    patience: int | None = None,
    jit_compile: bool | None = DEFAULT_JIT_COMPILE,
    steps_per_execution: int = DEFAULT_STEPS_PER_EXECUTION,
    learning_rate: float = DEFAULT_LEARNING_RATE,
    threads: int | None = None,
    backend: str | None = None,
    on_epoch: EpochCallback | None = None,
    on_epoch_model: Callable[[int, Any], None] | None = None,
    arrays: TrainingArrays | None = None,
) -> dict[str, Any]:
    """Train ``model`` on a window file into ``run_dir`` (= ``runs/<run-id>/<model>/``).

    Returns a small metrics dict (paths and numbers only). Resumes after the last recorded epoch
    when ``run_dir`` already holds the same training; raises ``BadInputError`` on bad input before
    writing anything. ``backend`` (None: whatever this process's Keras runs on) must be the
    backend Keras loaded here: a worker process (``run_worker``) gets it set before the import.
    The backend is recorded in ``spec.json`` but is no part of the training's identity: a
    checkpoint written on one backend resumes on another.
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
    if backend is not None:
        validate_backend(backend)
    rt = import_backend(threads)
    if backend is not None and backend != rt.NAME:
        raise BadInputError(
            f"backend {backend!r} requested, but this process loaded Keras on {rt.NAME!r} "
            "(KERAS_BACKEND is fixed at import): train in a worker process"
        )
    record["backend"] = rt.NAME
    import keras

    from tasks.zoo import build_model, compile_model

    md = ModelDir(Path(run_dir))
    old = md.read_spec()
    if old is not None:
        _check_resumable(old, record, md.path)
    # Build before writing anything: a shape that does not fit the architecture raises here.
    keras.utils.set_random_seed(int(seed))
    jit = opts.jit_for(model, gpu=rt.has_gpu(), backend=rt.NAME)
    rt.set_determinism(not jit)
    fresh = build_model(model, arrays.past, arrays.future, arrays.n_features, spec_obj,
                        residual=arrays.residual, target=arrays.target_feature)

    md.path.mkdir(parents=True, exist_ok=True)
    md.write_spec(record)
    start, checkpoint = resume_point(md)
    if checkpoint is not None:
        net = keras.saving.load_model(checkpoint, compile=True, safe_mode=True)
    else:
        net = fresh
        compile_model(net, jit_compile=jit,
                      steps_per_execution=rt.steps_per_execution(opts.steps_per_execution),
                      learning_rate=opts.learning_rate)
    history = md.read_history()
    val_losses = history["val_loss"].tolist()
    stopped = _stopped_early(val_losses, opts.patience)
    if start < opts.epochs and not stopped:
        md.clear_result()
    val_feed = rt.validation_feed(arrays.x_val, arrays.y_val,
                                  max(opts.batch_size, VALIDATION_BATCH))
    n = len(arrays.x_train)
    epoch = start
    while epoch < opts.epochs and not stopped:
        epoch += 1
        t0 = time.perf_counter()
        _reseed_layers(net, opts.seed, epoch)
        order = epoch_order(n, opts.seed, epoch)
        feed = rt.train_feed(arrays.x_train[order], arrays.y_train[order], opts.batch_size)
        fit = net.fit(**feed, **val_feed, initial_epoch=epoch - 1, epochs=epoch,
                      shuffle=False, verbose=0,
                      callbacks=rt.epoch_callbacks(opts.seed, epoch))
        loss = float(fit.history["loss"][-1])
        val_loss = float(fit.history["val_loss"][-1])
        seconds = time.perf_counter() - t0
        if opts.checkpoints is not CheckpointMode.NONE:
            save_checkpoint(net, md, epoch, val_loss)
        md.append_history(epoch, loss, val_loss, seconds)
        prune_checkpoints(md, opts.checkpoints, keep_latest=True)
        val_losses.append(val_loss)
        stopped = _stopped_early(val_losses, opts.patience)
        if on_epoch_model is not None:
            on_epoch_model(epoch, net)
        if on_epoch is not None:
            on_epoch({"model": model, "epoch": epoch, "epochs": opts.epochs, "loss": loss,
                      "val_loss": val_loss, "seconds": seconds})
    prune_checkpoints(md, opts.checkpoints, keep_latest=opts.checkpoints is CheckpointMode.BEST)
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

