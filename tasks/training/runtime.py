"""The one Keras/TensorFlow runtime set-up: environment variables, thread pools, devices, import.

Every process that may load TensorFlow takes its variables from here, *before* the import:
:data:`TENSORFLOW_DEFAULTS` (quiet C++ logs, the TensorFlow Keras backend, GPU memory growth),
``CUDA_VISIBLE_DEVICES`` (the devices it may use; "" hides every GPU) and ``OMP_NUM_THREADS``.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any

#: Defaults of every TensorFlow process (a value already in the environment wins).
TENSORFLOW_DEFAULTS: dict[str, str] = {
    "TF_CPP_MIN_LOG_LEVEL": "2",
    "KERAS_BACKEND": "tensorflow",
    "TF_FORCE_GPU_ALLOW_GROWTH": "true",
}
#: TensorFlow intra-/inter-op threads of one Dask worker's training (set by its launcher).
WORKER_THREADS_ENV = "CRYPTOFLOW_WORKER_THREADS"


def quiet_tensorflow_env(
    environ: MutableMapping[str, str] | None = None,
) -> MutableMapping[str, str]:
    """Fill in :data:`TENSORFLOW_DEFAULTS` where unset (``os.environ`` by default); return it."""
    target = os.environ if environ is None else environ
    for key, value in TENSORFLOW_DEFAULTS.items():
        target.setdefault(key, value)
    return target


def runtime_env(
    devices: str | None = None,
    threads: int | None = None,
    current: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The variables of a TensorFlow process: the defaults (``current``'s values win, except the
    backend: the training code is TensorFlow's), ``CUDA_VISIBLE_DEVICES`` when ``devices`` is
    given and ``OMP_NUM_THREADS`` when ``threads`` is."""
    current = os.environ if current is None else current
    env = {key: current.get(key, value) for key, value in TENSORFLOW_DEFAULTS.items()}
    env["KERAS_BACKEND"] = TENSORFLOW_DEFAULTS["KERAS_BACKEND"]
    if devices is not None:
        env["CUDA_VISIBLE_DEVICES"] = devices
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    return env


def configure_environment(devices: str = "", threads: int | None = None) -> None:
    """Set device visibility, thread count and quiet logs; must run before TensorFlow is imported.

    ``devices`` is a ``CUDA_VISIBLE_DEVICES`` value ("" hides every GPU).
    """
    os.environ.update(runtime_env(devices, threads))


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
    quiet_tensorflow_env()
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
