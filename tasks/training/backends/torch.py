"""The PyTorch backend: environment, import (threads, per-process GPU memory fraction),
deterministic algorithms, eager training (Keras' ``jit_compile`` means ``torch.compile`` here,
off by default as in Keras) and NumPy feeds. Keras runs one step per call on torch."""

from __future__ import annotations

import os
import sys
from typing import Any

import numpy as np

from tasks.training.backends._quiet import set_keras_backend, stderr_muted

NAME = "torch"
#: Defaults of every PyTorch process (a value already in the environment wins); the cuBLAS
#: workspace setting makes cuBLAS deterministic.
ENV_DEFAULTS: dict[str, str] = {
    "KERAS_BACKEND": NAME,
    "CUBLAS_WORKSPACE_CONFIG": ":4096:8",
}


def memory_env(fraction: float) -> dict[str, str]:
    """PyTorch takes its cap at import (``set_per_process_memory_fraction``)."""
    return {}


def import_backend(threads: int | None = None, memory_fraction: float | None = None) -> Any:
    """Import PyTorch: thread count, and the memory cap on every visible GPU."""
    fresh = "torch" not in sys.modules
    if fresh:
        set_keras_backend(NAME)
        for key, value in ENV_DEFAULTS.items():
            os.environ.setdefault(key, value)
    with stderr_muted():
        import torch

    if fresh and threads:
        torch.set_num_threads(int(threads))
    if fresh and memory_fraction and torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            torch.cuda.set_per_process_memory_fraction(float(memory_fraction), i)
    return torch


def has_gpu() -> bool:
    """Whether PyTorch sees a CUDA GPU."""
    import torch

    return bool(torch.cuda.is_available())


def jit_default(family: str, gpu: bool) -> bool:
    """Eager (Keras' own default for torch)."""
    return False


def set_determinism(enabled: bool) -> None:
    """Deterministic algorithms on or off (warnings only where an op has none)."""
    import torch

    torch.use_deterministic_algorithms(bool(enabled), warn_only=True)


def steps_per_execution(requested: int) -> int:
    """Keras requires 1 on torch."""
    return 1


def train_feed(x: np.ndarray, y: np.ndarray, batch_size: int) -> dict[str, Any]:
    """``fit`` keywords feeding one epoch's (already ordered) arrays."""
    return {"x": x, "y": y, "batch_size": int(batch_size)}


def validation_feed(x: np.ndarray, y: np.ndarray, batch_size: int) -> dict[str, Any]:
    """``fit`` keywords of the validation data."""
    return {"validation_data": (x, y), "validation_batch_size": int(batch_size)}


def epoch_callbacks(seed: int, epoch: int) -> list[Any]:
    """A callback seeding torch's global generator from (seed, epoch, batch) before each
    training batch: Keras' unseeded dropout on torch draws from it (not from the layer's seed
    generator), and a first ``fit`` call draws from it differently than a later one, so a
    resumed epoch would not equal the uninterrupted one without it."""
    import keras
    import torch

    base = np.random.default_rng([int(seed) & 0xFFFFFFFF, int(epoch), 2]).integers(1, 2**40)

    class SeedTorchPerBatch(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch: int, logs: Any = None) -> None:
            torch.manual_seed(int(base) + int(batch))

    return [SeedTorchPerBatch()]
