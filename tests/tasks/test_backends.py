"""The zoo on every installed Keras backend: the choice and its environment, and, per backend
in its own process (Keras' backend is fixed at import; this process has TensorFlow): every
model trains, same seed same history, a resume equals the uninterrupted run (also after
kill -9), a reloaded checkpoint predicts what the model did at that epoch, and a checkpoint
written on JAX loads and predicts the same on TensorFlow and PyTorch."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from storage.errors import BadInputError
from storage.runs import ModelDir
from tasks.training import backends
from tasks.training.backends import (
    BACKENDS,
    installed_backends,
    resolve_backend,
    runtime_env,
)
from tests.support.backend_run import REPO, run_on
from tests.support.windows import write_real_windows


def _installed(name: str) -> pytest.param:
    return pytest.param(name, marks=pytest.mark.skipif(
        not backends.is_installed(name),
        reason=f"Keras backend {name} is not installed here (pip install '.[jax]' / torch)"))


ALL = [_installed(b) for b in BACKENDS]


@pytest.fixture(scope="module")
def windows(tmp_path_factory) -> Path:
    """Real windows, N=64, K=4, close only (about 130 training windows)."""
    return write_real_windows(tmp_path_factory.mktemp("backends") / "w64.h5", 64, 4, stride=16)


def _history(run_dir: Path) -> pd.DataFrame:
    return ModelDir(run_dir).read_history()[["epoch", "loss", "val_loss"]]


def test_backend_choice_parameter_then_setting_then_keras_backend():
    assert resolve_backend(None, {}) == backends.DEFAULT_BACKEND
    assert resolve_backend(None, {"KERAS_BACKEND": "jax"}) == "jax"
    assert resolve_backend(None, {"KERAS_BACKEND": "jax", "CRYPTOFLOW_BACKEND": "Torch"}) == "torch"
    assert resolve_backend("JAX", {"CRYPTOFLOW_BACKEND": "torch"}) == "jax"
    with pytest.raises(BadInputError, match=r"^backend: unknown Keras backend 'mxnet'"):
        resolve_backend("mxnet", {})
    with pytest.raises(BadInputError, match="CRYPTOFLOW_BACKEND: unknown Keras backend"):
        resolve_backend(None, {"CRYPTOFLOW_BACKEND": "theano"})
    assert set(installed_backends()) <= set(BACKENDS) and "tensorflow" in installed_backends()


def test_runtime_env_per_backend_sets_keras_backend_and_memory_cap():
    tf = runtime_env("tensorflow", "", 2, current={"KERAS_BACKEND": "jax"})
    assert tf["KERAS_BACKEND"] == "tensorflow" and tf["TF_FORCE_GPU_ALLOW_GROWTH"] == "true"
    assert tf["CUDA_VISIBLE_DEVICES"] == "" and tf["OMP_NUM_THREADS"] == "2"
    jax = runtime_env("jax", "0", memory_fraction=1 / 3, current={})
    assert jax["KERAS_BACKEND"] == "jax" and jax["XLA_PYTHON_CLIENT_PREALLOCATE"] == "false"
    assert jax["XLA_PYTHON_CLIENT_MEM_FRACTION"] == "0.3333"
    assert jax[backends.MEMORY_FRACTION_ENV] == "0.3333"
    assert runtime_env(None, current={"KERAS_BACKEND": "torch"})["KERAS_BACKEND"] == "torch"
    with pytest.raises(BadInputError, match="memory fraction"):
        runtime_env("jax", "0", memory_fraction=0, current={})


def test_no_module_outside_the_backends_package_imports_a_backend():
    """One runtime module per backend: nothing else imports tensorflow, jax or torch."""
    offenders = []
    for path in [*REPO.glob("tasks/**/*.py"), *REPO.glob("flows/*.py"),
                 *REPO.glob("storage/**/*.py"), *REPO.glob("cryptoflow/*.py")]:
        if "backends" in path.parts:
            continue
        for line in path.read_text().splitlines():
            words = line.strip().split()
            if len(words) >= 2 and words[0] in ("import", "from") and \
                    words[1].split(".")[0] in ("tensorflow", "jax", "torch"):
                offenders.append(f"{path.relative_to(REPO)}: {line.strip()}")
    assert offenders == []


def test_in_process_backend_mismatch_refused_before_any_write(windows, tmp_path):
    from tasks.training.loop import train_model

    other = "jax" if backends.active_backend() != "jax" else "tensorflow"
    with pytest.raises(BadInputError, match="train in a worker process"):
        train_model(windows, "cnn2_relu", tmp_path / "run", epochs=1, backend=other)
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
@pytest.mark.parametrize("backend", ALL)
def test_every_zoo_model_trains_on_the_backend(backend, windows, tmp_path):
    from tasks.zoo import MODEL_NAMES

    out = run_on(backend, {"mode": "zoo", "windows": str(windows), "root": str(tmp_path)})
    assert out["backend"] == backend == out["runtime"]
    assert out["tensorflow_loaded"] == (backend == "tensorflow")
    assert sorted(out["models"]) == sorted(MODEL_NAMES)
    for model, r in out["models"].items():
        assert math.isfinite(r["loss"]) and math.isfinite(r["val_loss"]), model
        assert r["backend"] == backend


@pytest.mark.parametrize("backend", ALL)
@pytest.mark.parametrize("model", ["cnn3_leaky", "gru_tanh_leaky"])
def test_determinism_resume_and_reloaded_checkpoints(backend, model, windows, tmp_path):
    """Same seed, same history; 1 epoch then a resume to 2 equals 2 straight; each epoch's
    checkpoint, reloaded on the backend, predicts exactly what the model did then."""
    job = {"mode": "train", "windows": str(windows), "model": model, "seed": 4}
    a = run_on(backend, {**job, "run_dir": str(tmp_path / "a"), "epochs": 2})
    run_on(backend, {**job, "run_dir": str(tmp_path / "b"), "epochs": 2})
    run_on(backend, {**job, "run_dir": str(tmp_path / "c"), "epochs": 1})
    c = run_on(backend, {**job, "run_dir": str(tmp_path / "c"), "epochs": 2})
    assert a["backend"] == backend and c["result"]["resumed_from_epoch"] == 1
    # Keras' TensorFlow probe is off on JAX/torch (training, saving and loading need none).
    assert a["tensorflow_loaded"] == (backend == "tensorflow")
    pd.testing.assert_frame_equal(_history(tmp_path / "a"), _history(tmp_path / "b"))
    pd.testing.assert_frame_equal(_history(tmp_path / "a"), _history(tmp_path / "c"))
    preds = np.load(tmp_path / "a" / "predictions.npz")
    for epoch in (1, 2):
        np.testing.assert_array_equal(preds[f"reloaded-{epoch}"], preds[f"seen-{epoch}"])
    assert not np.array_equal(preds["seen-1"], preds["seen-2"])
    assert json.loads((tmp_path / "a" / "spec.json").read_text())["backend"] == backend


@pytest.mark.slow
@pytest.mark.parametrize("backend", ALL)
def test_kill_9_then_resume_equals_uninterrupted(backend, windows, tmp_path):
    from tasks.training.slots import Slot
    from tasks.training.worker import run_worker, train_job

    model, epochs = "gru_tanh_relu", 6
    run_dir = tmp_path / "killed" / model
    job = {**train_job(model, str(windows), str(run_dir), {"epochs": epochs, "seed": 11}),
           "backend": backend, "threads": 1}
    env = {**os.environ, **runtime_env(backend, "", 1)}
    proc = subprocess.Popen([sys.executable, "-m", "tasks.training", json.dumps(job)], cwd=REPO,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and len(ModelDir(run_dir).read_history()) < 2:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = _history(run_dir)
    assert 2 <= len(killed_at) < epochs, "the worker must die mid-run"
    slot = Slot("cpu-0", "", 1, False)
    result = run_worker({**job, "run_dir": str(run_dir)}, slot)
    assert result["resumed_from_epoch"] >= len(killed_at)
    straight = tmp_path / "straight" / model
    run_worker({**job, "run_dir": str(straight)}, slot)
    pd.testing.assert_frame_equal(_history(run_dir), _history(straight))
    assert _history(run_dir)["epoch"].tolist() == list(range(1, epochs + 1))


@pytest.mark.parametrize("model", ["cnn3_leaky", "lstm_tanh_leaky"])
def test_checkpoint_written_on_jax_predicts_the_same_on_tensorflow_and_torch(
        model, windows, tmp_path):
    if not backends.is_installed("jax"):
        pytest.skip("JAX is not installed here (pip install '.[jax]')")
    from tasks.selection import load_checkpoint
    from tests.support.backend_run import _x_val

    run_dir = tmp_path / "jax" / model
    run_on("jax", {"mode": "train", "windows": str(windows), "model": model,
                   "run_dir": str(run_dir), "epochs": 2, "seed": 2})
    on_jax = np.load(run_dir / "predictions.npz")["seen-2"]
    checkpoint = ModelDir(run_dir).checkpoints()[2]
    on_tf = load_checkpoint(checkpoint).predict(_x_val(str(windows)), verbose=0)  # this process
    np.testing.assert_allclose(on_tf, on_jax, rtol=1e-4, atol=1e-5)
    if backends.is_installed("torch"):
        out = tmp_path / "torch.npy"
        run_on("torch", {"mode": "predict", "windows": str(windows),
                         "checkpoint": str(checkpoint), "out": str(out)})
        np.testing.assert_allclose(np.load(out), on_jax, rtol=1e-4, atol=1e-5)


def test_gpu_bench_runs_without_prefect_tensorflow_or_pydantic(windows, tmp_path):
    """bench/gpu.sh's path (bench/gpu_train.py and the worker processes it starts) imports
    none of what the GPU host lacks: a sitecustomize blocks them in every process."""
    if not backends.is_installed("jax"):
        pytest.skip("JAX is not installed here (pip install '.[jax]')")
    block = tmp_path / "block"
    block.mkdir()
    (block / "sitecustomize.py").write_text(
        "import sys\nfor m in ('prefect', 'tensorflow', 'pydantic', 'pydantic_settings',"
        " 'distributed'):\n    sys.modules[m] = None\n")
    env = {**os.environ, "PYTHONPATH": str(block), "KERAS_BACKEND": "jax",
           "CRYPTOFLOW_BACKEND": "jax"}
    out = subprocess.run(
        [sys.executable, "bench/gpu_train.py", "--cpu", "--parts", "models,zoo", "--epochs", "2",
         "--zoo-epochs", "1", "--per-gpu", "1,2", "--models", "cnn3_leaky,gru_tanh_leaky",
         "--dataset", str(windows)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "backend jax" in out.stdout
    assert "cnn3_leaky" in out.stdout and "gru_tanh_leaky" in out.stdout
    assert "2 per CPU run (2 slots)" in out.stdout and "throughput 2 vs 1" in out.stdout
    probe = subprocess.run([sys.executable, "-c", "import prefect"], env=env, cwd=REPO,
                           capture_output=True, text=True)
    assert probe.returncode != 0  # the block is real


def test_models_per_gpu_slots_on_two_gpus_and_limits():
    from tasks.training.slots import plan_slots
    from tasks.training.task import gpu_limits

    free = {"0": 80_000, "1": 80_000}
    slots = plan_slots("auto", None, 12, ["0", "1"], jobs=10, models_per_gpu=3, free_mb=free)
    assert len(slots) == 6
    assert sorted(s.devices for s in slots) == ["0", "0", "0", "1", "1", "1"]
    assert [s.devices for s in slots[:2]] == ["0", "1"]  # interleaved: both GPUs busy first
    assert all(s.gpu and s.memory_fraction == pytest.approx(1 / 3, abs=1e-3) for s in slots)
    assert all(s.threads == 2 for s in slots) and len({s.name for s in slots}) == 6
    assert gpu_limits(slots) == {"cryptoflow-gpu-0": 3, "cryptoflow-gpu-1": 3}
    # default from free memory: 8 GiB free -> 4 of the 2 GiB footprint; unknown memory -> 1
    auto = plan_slots("gpu:0", None, 16, ["0"], free_mb={"0": 8192})
    assert len(auto) == 4 and gpu_limits(auto) == {"cryptoflow-gpu-0": 4}
    assert [s.name for s in plan_slots("gpu:0", None, 16, ["0"])] == ["gpu-0"]
    assert plan_slots("gpu:0", None, 16, ["0"])[0].memory_fraction is None


@pytest.mark.parametrize("per, message", [
    (0, "models_per_gpu must be a whole number >= 1"),
    (40, "models_per_gpu 40 needs about 81920 MiB on GPU 0"),
])
def test_bad_models_per_gpu_refused(per, message):
    from tasks.training.slots import plan_slots

    with pytest.raises(BadInputError, match=message):
        plan_slots("gpu:0", None, 8, ["0"], models_per_gpu=per, free_mb={"0": 20_000})


def test_dask_asks_a_fraction_of_a_gpu():
    from flows.runners import gpu_share, local_cluster_kwargs

    assert gpu_share(4) == 0.25
    kw = local_cluster_kwargs(None, 2, cores=16, models_per_gpu=4)
    assert kw["n_workers"] == 2 and kw["threads_per_worker"] == 4
    assert kw["resources"] == {"GPU": 1} and kw["env"]["OMP_NUM_THREADS"] == "2"
    with pytest.raises(BadInputError):
        gpu_share(0)
