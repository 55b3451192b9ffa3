"""The Keras backends the zoo trains on, and the one place that picks one.

``tensorflow``, ``jax`` and ``torch`` each have a runtime module here (environment defaults,
import with thread pools and GPU memory settings, determinism, the ``jit_compile`` default and
how one epoch's arrays go into ``fit``); nothing outside this package imports a backend
directly. The backend of a process is fixed when Keras is imported (``KERAS_BACKEND``), so a
worker process gets it in its environment from :func:`runtime_env` before anything loads.

Choice (:func:`resolve_backend`): an explicit ``backend`` (flow/CLI parameter), else
``CRYPTOFLOW_BACKEND``, else ``KERAS_BACKEND``, else :data:`DEFAULT_BACKEND`.

Default by measurement: TensorFlow stays the default. JAX is faster per epoch for every model
measured, but it is an extra, and the whole suite has not yet been run on it (the rule: JAX
becomes the default only with every test green on it). Measured 2026-12-02 on the shared
2-core build machine (load average 3.3-4.5), ``bench/train.py --skip-models --skip-zoo
--backends tensorflow,jax,torch --models cnn2_relu,cnn3_leaky,lstm_tanh_leaky,gru_tanh_leaky
--epochs 4 --rounds 1``, seconds per epoch (tutorial windows, batch 8, median of epochs 2-4):

    model            tensorflow   jax     torch
    cnn2_relu          0.183     0.029    3.28
    cnn3_leaky         0.254     0.037   10.55
    lstm_tanh_leaky    1.297     0.888   38.19
    gru_tanh_leaky     1.271     0.761   62.04

PyTorch (eager, one step per call, as Keras requires) is 20-80x slower here: supported, not
advised. The zoo on JAX (``--skip-models --zoo-epochs 20 --zoo-backend jax --zoo-parallel 2``):
277.6 s for 20 epochs, measured while another test run shared the 2 cores (load 4.1), so the
100-epoch <= 200 s target was not confirmed here. Re-measured 2026-12-03 on the idle machine
(load 0.3) after JAX/torch workers stopped importing TensorFlow (``--zoo-epochs 100``): 287.4 s
for 10 models x 100 epochs (TF-era 513 s): 414.6 s inside epochs (207 s per slot; LSTM/GRU
73-106 s each, CNNs 7-12 s), 80 s outside them (checkpoint written every epoch, process start-up,
imbalance). The 2-epoch zoo went 101.7 s -> 44.8 s with that fix. Still above 200 s: see README.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from collections.abc import Mapping
from types import ModuleType

from storage.errors import BadInputError

BACKENDS: tuple[str, ...] = ("tensorflow", "jax", "torch")
DEFAULT_BACKEND = "tensorflow"
#: The setting naming the backend of every training process (the flows' ``backend`` wins).
BACKEND_ENV = "CRYPTOFLOW_BACKEND"
#: Per-process GPU memory cap as a fraction of one GPU (set for several models per GPU).
MEMORY_FRACTION_ENV = "CRYPTOFLOW_GPU_MEMORY_FRACTION"
#: The importable module that proves each backend is installed.
_PROBE = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}


def validate_backend(name: object, what: str = "backend") -> str:
    """``name`` folded to lower case if it is a known backend; BadInputError naming ``what``."""
    text = str(name).strip().lower() if isinstance(name, str) else name
    if text not in BACKENDS:
        raise BadInputError(
            f"{what}: unknown Keras backend {name!r}; use one of {', '.join(BACKENDS)}"
        )
    return str(text)


def resolve_backend(backend: str | None = None, current: Mapping[str, str] | None = None) -> str:
    """The backend to train on: ``backend``, else ``$CRYPTOFLOW_BACKEND``, else
    ``$KERAS_BACKEND``, else :data:`DEFAULT_BACKEND` (each validated, naming its source)."""
    env = os.environ if current is None else current
    if backend is not None and str(backend).strip():
        return validate_backend(backend)
    for key in (BACKEND_ENV, "KERAS_BACKEND"):
        value = env.get(key, "").strip()
        if value:
            return validate_backend(value, key)
    return DEFAULT_BACKEND


def is_installed(backend: str) -> bool:
    """Whether ``backend``'s package can be imported here (without importing it)."""
    return importlib.util.find_spec(_PROBE[validate_backend(backend)]) is not None


def installed_backends() -> list[str]:
    """The backends whose package is installed here, in :data:`BACKENDS` order."""
    return [b for b in BACKENDS if is_installed(b)]


def require_installed(backend: str) -> str:
    """``backend`` if installed, else BadInputError naming the extra that installs it."""
    backend = validate_backend(backend)
    if not is_installed(backend):
        extra = {"jax": "pip install 'cryptoflow[jax]'", "torch": "pip install torch"}
        raise BadInputError(
            f"backend {backend!r} is not installed here ({extra.get(backend, 'pip install')})"
        )
    return backend


def runtime(backend: str) -> ModuleType:
    """The runtime module of ``backend`` (imports no backend by itself)."""
    return importlib.import_module(f"{__name__}.{validate_backend(backend)}")


def runtime_env(
    backend: str | None = None,
    devices: str | None = None,
    threads: int | None = None,
    memory_fraction: float | None = None,
    current: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The variables of a training process on ``backend`` (resolved from ``current``): the
    backend's defaults (``current``'s values win, except ``KERAS_BACKEND``, which is the chosen
    backend), ``CUDA_VISIBLE_DEVICES`` when ``devices`` is given, ``OMP_NUM_THREADS`` when
    ``threads`` is, and the backend's GPU memory cap when ``memory_fraction`` is."""
    current = os.environ if current is None else current
    name = resolve_backend(backend, current)
    defaults = runtime(name).ENV_DEFAULTS
    env = {key: current.get(key, value) for key, value in defaults.items()}
    env["KERAS_BACKEND"] = name
    env[BACKEND_ENV] = name
    if devices is not None:
        env["CUDA_VISIBLE_DEVICES"] = devices
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    if memory_fraction is not None:
        env[MEMORY_FRACTION_ENV] = f"{check_memory_fraction(memory_fraction):.4f}"
        env.update(runtime(name).memory_env(memory_fraction))
    return env


def check_memory_fraction(value: float) -> float:
    """A GPU memory fraction in (0, 1] (BadInputError otherwise)."""
    if not 0 < float(value) <= 1:
        raise BadInputError(f"GPU memory fraction must be in (0, 1], got {value!r}")
    return float(value)


def memory_fraction_from_env(current: Mapping[str, str] | None = None) -> float | None:
    """The per-process GPU memory cap set by :func:`runtime_env`, if any."""
    text = (os.environ if current is None else current).get(MEMORY_FRACTION_ENV, "").strip()
    return check_memory_fraction(float(text)) if text else None


def active_backend() -> str:
    """The backend of the Keras this process has loaded (or would load now)."""
    import keras

    return str(keras.backend.backend())


def import_backend(threads: int | None = None) -> ModuleType:
    """Import Keras on its backend quietly (thread pools, GPU memory) and return that backend's
    runtime module (``.has_gpu()``, ``.set_determinism()``, ``.jit_default()``, data feeds)."""
    import sys

    name = resolve_backend() if "keras" not in sys.modules else active_backend()
    rt = runtime(name)
    rt.import_backend(threads, memory_fraction_from_env())
    import keras

    loaded = str(keras.backend.backend())
    if loaded != "tensorflow":
        keep_tensorflow_out()
    return runtime(loaded) if loaded != name else rt


def keep_tensorflow_out() -> bool:
    """Tell Keras that TensorFlow is absent in this (JAX or torch) process, as on the GPU host.

    Keras probes for TensorFlow on every backend, and the probe imports it:
    ``keras.utils.set_random_seed`` seeds TensorFlow "for tf.data" whenever it is installed.
    That cost each JAX worker 2.3 s of its ~5 s start-up here (10 workers per zoo run) and
    TensorFlow's memory; these backends feed NumPy arrays, never tf.data. True when the probe
    is now off; False when TensorFlow is already loaded or this Keras has no such probe."""
    import sys

    if "tensorflow" in sys.modules:
        return False
    try:
        from keras.src.utils import module_utils
    except ImportError:
        return False
    probe = getattr(module_utils, "tensorflow", None)
    if probe is None or not hasattr(probe, "_available"):
        return False
    probe._available = False
    return True
