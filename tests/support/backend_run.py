"""Support: one training on a chosen Keras backend in its own process (the backend is fixed when
Keras is imported, and the pytest process has Keras on TensorFlow).

``python -m tests.support.backend_run JOB_JSON`` with ``KERAS_BACKEND`` set by the caller
(:func:`run_on`); prints one JSON line. Jobs (``mode``):

- ``train``: ``train_model`` (``epochs``, ``seed``, ``batch_size``) into ``run_dir``; the
  model's validation predictions after each epoch, and each epoch's checkpoint reloaded and
  predicting on this backend, go to ``<run_dir>/predictions.npz`` (``seen-E``, ``reloaded-E``);
- ``predict``: load ``checkpoint`` here and write its validation predictions to ``out``;
- ``zoo``: every zoo model one epoch (``epochs``) into ``root``; each one's output shape and
  last losses.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[2]


def run_on(backend: str, job: dict[str, Any], timeout: float = 600) -> dict[str, Any]:
    """Run ``job`` in a fresh process on ``backend``; its JSON answer."""
    from tasks.training.runtime import runtime_env

    env = {**os.environ, **runtime_env("", 2, backend=backend),
           "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH"))
                                         if p)}
    out = subprocess.run([sys.executable, "-m", "tests.support.backend_run", json.dumps(job)],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        raise AssertionError(f"{backend} job failed ({out.returncode}): {out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _x_val(windows: str) -> np.ndarray:
    from tasks.training.arrays import read_training_arrays

    return read_training_arrays(Path(windows), "cnn2_relu").x_val


def main(job: dict[str, Any]) -> dict[str, Any]:
    from tasks.training.runtime import import_backend

    rt = import_backend(2)
    import keras

    answer: dict[str, Any] = {"backend": keras.backend.backend(), "runtime": rt.NAME}
    _run(job, answer)
    answer["tensorflow_loaded"] = "tensorflow" in sys.modules  # JAX/torch: never imported
    return answer


def _run(job: dict[str, Any], answer: dict[str, Any]) -> None:
    import keras

    from tasks.training.loop import train_model

    if job["mode"] == "train":
        x_val = _x_val(job["windows"])
        seen: dict[str, np.ndarray] = {}
        result = train_model(
            Path(job["windows"]), job["model"], Path(job["run_dir"]), epochs=job["epochs"],
            batch_size=job.get("batch_size", 8), seed=job.get("seed", 0),
            on_epoch_model=lambda e, net: seen.__setitem__(
                f"seen-{e}", np.asarray(net.predict(x_val, verbose=0))),
        )
        from storage.runs import ModelDir

        for epoch, path in ModelDir(Path(job["run_dir"])).checkpoints().items():
            net = keras.saving.load_model(path, safe_mode=True)
            seen[f"reloaded-{epoch}"] = np.asarray(net.predict(x_val, verbose=0))
        np.savez(Path(job["run_dir"]) / "predictions.npz", **seen)
        answer["result"] = result
    elif job["mode"] == "predict":
        import tasks.zoo  # noqa: F401 - custom layers registered

        net = keras.saving.load_model(job["checkpoint"], compile=False, safe_mode=True)
        np.save(job["out"], np.asarray(net.predict(_x_val(job["windows"]), verbose=0)))
    elif job["mode"] == "zoo":
        from tasks.zoo import MODEL_NAMES

        answer["models"] = {}
        for model in MODEL_NAMES:
            r = train_model(Path(job["windows"]), model, Path(job["root"]) / model,
                            epochs=job.get("epochs", 1), batch_size=16, seed=0)
            spec = json.loads((Path(job["root"]) / model / "spec.json").read_text())
            answer["models"][model] = {"loss": r["last_loss"], "val_loss": r["last_val_loss"],
                                       "output_shape": spec["output_shape"],
                                       "backend": spec["backend"]}


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))))
