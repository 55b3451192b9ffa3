"""The TensorFlow backend: environment, import (threads, GPU memory growth), op determinism,
and ``tf.data`` feeds (NumPy arrays given to ``fit`` cost ~0.3 s of adapter set-up per call)."""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Any

import numpy as np

from tasks.training.backends._quiet import set_keras_backend, stderr_muted

NAME = "tensorflow"
#: Defaults of every TensorFlow process (a value already in the environment wins).
ENV_DEFAULTS: dict[str, str] = {
    "TF_CPP_MIN_LOG_LEVEL": "2",
    "KERAS_BACKEND": NAME,
    "TF_FORCE_GPU_ALLOW_GROWTH": "true",
}
#: XLA by family on CPU (bench/train.py): ~2x for the recurrent models, slower for tiny CNNs.
JIT_BY_FAMILY = {"cnn": False, "recurrent": True}


def memory_env(fraction: float) -> dict[str, str]:
    """TensorFlow has no fraction variable: growth stays on, the cap is set at import."""
    return {"TF_FORCE_GPU_ALLOW_GROWTH": "true"}


def import_backend(threads: int | None = None, memory_fraction: float | None = None) -> Any:
    """Import TensorFlow quietly, set thread pools and GPU memory growth (or a cap: a fraction
    of each GPU's total memory); return the module."""
    if "tensorflow" in sys.modules:
        import tensorflow as tf

        return tf
    set_keras_backend(NAME)
    for key, value in ENV_DEFAULTS.items():
        os.environ.setdefault(key, value)
    with stderr_muted():
        import tensorflow as tf

        tf.get_logger().setLevel("ERROR")
        if threads:
            tf.config.threading.set_intra_op_parallelism_threads(int(threads))
            tf.config.threading.set_inter_op_parallelism_threads(int(threads))
        for gpu in tf.config.list_physical_devices("GPU"):
            with contextlib.suppress(RuntimeError, ValueError):
                if memory_fraction:
                    total = tf.config.experimental.get_device_details(gpu).get(
                        "memory_limit_mb", 0) or 0
                    if total:
                        tf.config.set_logical_device_configuration(gpu, [
                            tf.config.LogicalDeviceConfiguration(
                                memory_limit=int(total * memory_fraction))])
                        continue
                tf.config.experimental.set_memory_growth(gpu, True)
    return tf


def has_gpu() -> bool:
    """Whether TensorFlow sees a GPU."""
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


def jit_default(family: str, gpu: bool) -> bool:
    """XLA per family on CPU; off on GPUs (the recurrent layers use cuDNN)."""
    return not gpu and JIT_BY_FAMILY[family]


def set_determinism(enabled: bool) -> None:
    """Turn TensorFlow's op determinism on or off (process-wide).

    Keras refuses XLA while it is on, so XLA-compiled (recurrent, CPU) training turns it off and
    relies on XLA's CPU kernels being deterministic: the tests check same seed, same history.
    """
    import tensorflow as tf

    if enabled:
        tf.config.experimental.enable_op_determinism()
        return
    from tensorflow.python.framework import config as tf_config

    tf_config.disable_op_determinism()


def train_feed(x: np.ndarray, y: np.ndarray, batch_size: int) -> dict[str, Any]:
    """``fit`` keywords feeding one epoch's (already ordered) arrays."""
    import tensorflow as tf

    return {"x": tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size)}


def validation_feed(x: np.ndarray, y: np.ndarray, batch_size: int) -> dict[str, Any]:
    """``fit`` keywords of the validation data (built once per training)."""
    import tensorflow as tf

    return {"validation_data": tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size)}


def steps_per_execution(requested: int) -> int:
    """Several steps per graph call: supported."""
    return int(requested)


def epoch_callbacks(seed: int, epoch: int) -> list[Any]:
    """None needed: every random op of the zoo draws from the layers' seed generators."""
    return []
