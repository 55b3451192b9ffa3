"""The JAX backend: environment (no GPU preallocation; a memory fraction per process), import,
determinism, always-jitted training and NumPy feeds (Keras' array adapter needs no TensorFlow).

XLA's CPU kernels are deterministic (the tests check same seed, same history); on GPUs the
zoo's ops (dense, conv, recurrent scans) are too in practice, and no XLA flag is forced, so the
host's JAX version never meets an unknown flag.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import numpy as np

from tasks.training.backends._quiet import set_keras_backend, stderr_muted

NAME = "jax"
#: Defaults of every JAX process (a value already in the environment wins): allocate GPU
#: memory as needed (several models share one GPU), quiet XLA logs.
ENV_DEFAULTS: dict[str, str] = {
    "TF_CPP_MIN_LOG_LEVEL": "2",
    "KERAS_BACKEND": NAME,
    "XLA_PYTHON_CLIENT_PREALLOCATE": "false",
}


def memory_env(fraction: float) -> dict[str, str]:
    """JAX caps its GPU allocator at this fraction of the GPU (read at JAX's start)."""
    return {"XLA_PYTHON_CLIENT_MEM_FRACTION": f"{float(fraction):.4f}",
            "XLA_PYTHON_CLIENT_PREALLOCATE": "false"}


def import_backend(threads: int | None = None, memory_fraction: float | None = None) -> Any:
    """Import JAX (environment first: one CPU thread when ``threads`` is 1, the memory cap)."""
    if "jax" not in sys.modules:
        set_keras_backend(NAME)
        for key, value in ENV_DEFAULTS.items():
            os.environ.setdefault(key, value)
        if memory_fraction:
            os.environ.update(memory_env(memory_fraction))
        if threads == 1 and "xla_cpu_multi_thread_eigen" not in os.environ.get("XLA_FLAGS", ""):
            flags = os.environ.get("XLA_FLAGS", "")
            os.environ["XLA_FLAGS"] = (
                f"{flags} --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
            ).strip()
    with stderr_muted():
        import jax

    return jax


def has_gpu() -> bool:
    """Whether JAX's default device is a GPU."""
    import jax

    return jax.default_backend() == "gpu"


def jit_default(family: str, gpu: bool) -> bool:
    """Always jit: JAX without jit runs op by op (many times slower)."""
    return True


def set_determinism(enabled: bool) -> None:
    """Nothing to switch: see the module docstring."""


def steps_per_execution(requested: int) -> int:
    """Several steps per jitted call: supported."""
    return int(requested)


def train_feed(x: np.ndarray, y: np.ndarray, batch_size: int) -> dict[str, Any]:
    """``fit`` keywords feeding one epoch's (already ordered) arrays."""
    return {"x": x, "y": y, "batch_size": int(batch_size)}


def validation_feed(x: np.ndarray, y: np.ndarray, batch_size: int) -> dict[str, Any]:
    """``fit`` keywords of the validation data."""
    return {"validation_data": (x, y), "validation_batch_size": int(batch_size)}


def epoch_callbacks(seed: int, epoch: int) -> list[Any]:
    """None needed: every random op of the zoo draws from the layers' seed generators."""
    return []
