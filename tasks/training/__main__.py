"""The training worker process: ``python -m tasks.training JOB_JSON`` (see ``worker.py``).

Sets the Keras backend, devices, thread counts and GPU memory cap *before* Keras is imported,
runs one ``train`` or ``sweep`` job and prints one JSON line per epoch (prefixed
``@@cryptoflow``) plus the final result.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from storage.errors import BadInputError
from tasks.training.loop import train_model
from tasks.training.runtime import configure_environment, import_backend
from tasks.training.sweep import run_sweep_setting
from tasks.training.worker import emit


def worker_main(argv: list[str]) -> int:
    """Entry point of a training worker process: one JSON job argument, JSON events on stdout."""
    job = json.loads(argv[0])
    configure_environment(job.get("devices", ""), job.get("threads"),
                          backend=job.get("backend"),
                          memory_fraction=job.pop("memory_fraction", None))
    import_backend(job.get("threads"))
    kind = job.pop("kind", "train")
    job.pop("devices", None)
    if kind == "sweep":
        job.pop("backend", None)
    try:
        if kind == "train":
            result = train_model(
                Path(job.pop("dataset_path")), job.pop("model"), Path(job.pop("run_dir")),
                on_epoch=lambda e: emit({"event": "epoch", **e}), **job,
            )
        elif kind == "sweep":
            result = run_sweep_setting(job, on_progress=lambda e: emit({"event": "epoch", **e}))
        else:
            raise BadInputError(f"unknown job kind {kind!r}")
    except ValueError as exc:
        emit({"event": "error", "error": str(exc), "type": "ValueError"})
        return 2
    emit({"event": "result", "result": result})
    return 0


if __name__ == "__main__":
    raise SystemExit(worker_main(sys.argv[1:]))
