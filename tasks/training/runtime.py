"""The Keras runtime set-up of a training process: environment variables, import, threads.

Every process that may load Keras takes its variables from here, *before* the import: the
chosen backend's defaults (``tasks.training.backends``: ``KERAS_BACKEND``, quiet logs, GPU
memory growth or a per-process cap), ``CUDA_VISIBLE_DEVICES`` (the devices it may use; ""
hides every GPU) and ``OMP_NUM_THREADS``. The backend-specific calls live in
``tasks.training.backends.<backend>``; this module only routes to them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping
from types import ModuleType
from typing import Any

from tasks.training import backends
from tasks.training.backends import tensorflow as _tensorflow

#: Defaults of every TensorFlow process (kept for callers of the TensorFlow-only era).
TENSORFLOW_DEFAULTS: dict[str, str] = _tensorflow.ENV_DEFAULTS
#: Intra-/inter-op threads of one Dask worker's training (set by its launcher).
WORKER_THREADS_ENV = "CRYPTOFLOW_WORKER_THREADS"


def quiet_env(environ: MutableMapping[str, str] | None = None) -> MutableMapping[str, str]:
    """Fill in the chosen backend's defaults where unset (``os.environ`` by default); return it.

    The backend is :func:`backends.resolve_backend`'s (``CRYPTOFLOW_BACKEND`` first, so an
    in-process Keras loads on the backend the workers train on)."""
    target = os.environ if environ is None else environ
    name = backends.resolve_backend(current=target)
    for key, value in backends.runtime(name).ENV_DEFAULTS.items():
        target.setdefault(key, value)
    if target.get(backends.BACKEND_ENV, "").strip():
        target["KERAS_BACKEND"] = name
    return target


#: The older name of :func:`quiet_env`.
quiet_tensorflow_env = quiet_env


def runtime_env(
    devices: str | None = None,
    threads: int | None = None,
    current: Mapping[str, str] | None = None,
    *,
    backend: str | None = None,
    memory_fraction: float | None = None,
) -> dict[str, str]:
    """The variables of a training process (see :func:`backends.runtime_env`)."""
    return backends.runtime_env(backend, devices, threads, memory_fraction, current)


def configure_environment(devices: str = "", threads: int | None = None, *,
                          backend: str | None = None,
                          memory_fraction: float | None = None) -> None:
    """Set backend, device visibility, thread count and quiet logs; must run before Keras is
    imported. ``devices`` is a ``CUDA_VISIBLE_DEVICES`` value ("" hides every GPU)."""
    os.environ.update(runtime_env(devices, threads, backend=backend,
                                  memory_fraction=memory_fraction))


def import_backend(threads: int | None = None) -> ModuleType:
    """Import Keras's backend quietly; return its runtime module (see ``backends``)."""
    return backends.import_backend(threads)


def import_tensorflow(threads: int | None = None) -> Any:
    """Import TensorFlow quietly (threads, GPU memory growth); return the module."""
    return _tensorflow.import_backend(threads, backends.memory_fraction_from_env())


def set_op_determinism(tf: Any, enabled: bool) -> None:
    """Turn TensorFlow's op determinism on or off (process-wide)."""
    _tensorflow.set_determinism(enabled)
