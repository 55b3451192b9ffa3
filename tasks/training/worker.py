"""The worker-process protocol: one JSON job in, one JSON event line per epoch and a result out.

``run_worker(job, slot)`` starts ``python -m tasks.training JOB_JSON`` (``__main__.py``) with
the slot's backend, devices, thread count and GPU memory cap set before Keras loads, and reads
the lines the worker writes with :func:`emit` (prefixed :data:`EVENT_PREFIX`): ``epoch``
events, then ``result`` or ``error`` (bad input, raised here as :class:`BadInputError`).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from storage.errors import BadInputError
from tasks.training.runtime import runtime_env
from tasks.training.slots import Slot

EVENT_PREFIX = "@@cryptoflow "
#: The module a worker process runs (``python -m``).
WORKER_MODULE = "tasks.training"
_REPO_ROOT = Path(__file__).resolve().parents[2]


class WorkerError(RuntimeError):
    """A training worker process failed (its stderr tail is in the message)."""


def train_job(model: str, dataset_path: str, run_dir: str, options: dict[str, Any]
              ) -> dict[str, Any]:
    """The worker job training ``model`` into ``run_dir``; ``options`` are ``train_model``
    keywords (epochs, batch_size, seed, patience, checkpoints, backend)."""
    return {"kind": "train", "dataset_path": dataset_path, "model": model, "run_dir": run_dir,
            **options}


def emit(event: dict[str, Any]) -> None:
    """Write one protocol event to stdout (worker side)."""
    sys.stdout.write(EVENT_PREFIX + json.dumps(event) + "\n")
    sys.stdout.flush()


def run_worker(job: dict[str, Any], slot: Slot,
               on_event: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Run one job in a fresh Python process on ``slot``; return its result.

    The process gets ``KERAS_BACKEND`` (``job["backend"]``, else the setting),
    ``CUDA_VISIBLE_DEVICES``, its thread count and memory cap before Keras loads.
    A bad request (``ValueError`` in the worker) is raised here as ``BadInputError``.
    """
    import subprocess

    job = {**job, "devices": slot.devices, "threads": slot.threads,
           "memory_fraction": slot.memory_fraction}
    env = {**os.environ, **runtime_env(slot.devices, slot.threads, backend=job.get("backend"),
                                       memory_fraction=slot.memory_fraction)}
    root = str(_REPO_ROOT)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    cmd = [sys.executable, "-m", WORKER_MODULE, json.dumps(job)]
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
        raise BadInputError(error)
    if rc != 0 or result is None:
        raise WorkerError(f"training worker exited with {rc}: {tail.strip()[-2000:]}")
    return result


def _kill_group(proc: Any) -> None:
    import signal

    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(Exception):
        proc.wait(timeout=10)
