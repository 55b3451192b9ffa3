"""The training task and the run store: per-epoch checkpoints that reload exactly, determinism,
resume (also after kill -9), best-only checkpoints, early stopping and clean bad-input errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from storage.runs import ModelDir, RunStore, checkpoint_name, parse_checkpoint_name
from tasks.training.loop import _stopped_early, train_model
from tests.support.windows import write_real_windows

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def windows(tmp_path_factory) -> Path:
    """Real windows, N=64, K=4, close only (about 130 training windows)."""
    return write_real_windows(tmp_path_factory.mktemp("train") / "w64.h5", 64, 4, stride=16)


def _history(run_dir: Path) -> pd.DataFrame:
    return ModelDir(run_dir).read_history()


@pytest.mark.parametrize("model", ["cnn3_leaky", "gru_tanh_leaky"])
def test_checkpoint_every_epoch_reloads_to_the_same_predictions(model, windows, tmp_path):
    import keras

    from tasks.windows import open_dataset

    with open_dataset(str(windows)) as ds:
        x_val, _ = ds.split_arrays("validation")
    seen: dict[int, np.ndarray] = {}
    run_dir = tmp_path / "run" / model
    result = train_model(
        windows, model, run_dir, epochs=3, batch_size=8, seed=3,
        on_epoch_model=lambda e, net: seen.__setitem__(e, net.predict(x_val, verbose=0)),
    )
    history = _history(run_dir)
    assert history["epoch"].tolist() == [1, 2, 3]
    md = ModelDir(run_dir)
    ckpts = md.checkpoints()
    assert sorted(ckpts) == [1, 2, 3]
    for epoch, path in ckpts.items():
        val_loss = float(history.loc[history["epoch"] == epoch, "val_loss"].iloc[0])
        assert path.name == checkpoint_name(epoch, val_loss)
        net = keras.saving.load_model(path, safe_mode=True)
        np.testing.assert_array_equal(net.predict(x_val, verbose=0), seen[epoch])
    spec = json.loads((run_dir / "spec.json").read_text())
    assert spec["model"] == model and spec["epochs"] == 3 and spec["seed"] == 3
    assert result["epochs_completed"] == 3 and result["best_epoch"] in (1, 2, 3)
    assert json.loads((run_dir / "result.json").read_text()) == result
    assert all(isinstance(v, (str, int, float, bool, type(None))) for v in result.values())


@pytest.mark.slow
def test_same_seed_same_history_and_resume_equals_uninterrupted(windows, tmp_path):
    """Recurrent models train XLA-compiled on CPU: still the same seed, the same history."""
    model = "lstm_tanh_leaky"
    train_model(windows, model, tmp_path / "a", epochs=2, seed=7)
    train_model(windows, model, tmp_path / "b", epochs=2, seed=7)
    first = train_model(windows, model, tmp_path / "c", epochs=1, seed=7)
    before = _history(tmp_path / "c")
    resumed = train_model(windows, model, tmp_path / "c", epochs=2, seed=7)
    a, b, c = (_history(tmp_path / k)[["epoch", "loss", "val_loss"]] for k in "abc")
    pd.testing.assert_frame_equal(a, b)  # determinism: exact
    pd.testing.assert_frame_equal(a, c)  # resume: exactly the uninterrupted run
    pd.testing.assert_frame_equal(_history(tmp_path / "c").iloc[:1], before)
    assert first["resumed_from_epoch"] == 0 and resumed["resumed_from_epoch"] == 1
    again = train_model(windows, model, tmp_path / "c", epochs=2, seed=7)  # nothing left to do
    assert again["resumed_from_epoch"] == 2
    pd.testing.assert_frame_equal(_history(tmp_path / "c")[["epoch", "loss", "val_loss"]], a)


def test_cnn_same_seed_same_history_other_seed_differs(windows, tmp_path):
    runs = [train_model(windows, "cnn3_relu", tmp_path / k, epochs=2, seed=s)
            for k, s in (("a", 5), ("b", 5), ("c", 6))]
    a, b, c = (_history(tmp_path / k)[["epoch", "loss", "val_loss"]] for k in "abc")
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(c) and runs[0]["best_val_loss"] == runs[1]["best_val_loss"]


@pytest.mark.slow
def test_kill_9_mid_run_then_retry_continues_from_last_epoch(windows, tmp_path):
    """A worker killed with SIGKILL leaves a consistent store; the retry finishes the run."""
    model, epochs = "gru_tanh_relu", 8
    run_dir = tmp_path / "killed" / model
    job = {"kind": "train", "dataset_path": str(windows), "model": model,
           "run_dir": str(run_dir), "epochs": epochs, "seed": 11, "threads": 1}
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.Popen([sys.executable, "-m", "tasks.training", json.dumps(job)], cwd=REPO,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and len(_history(run_dir)) < 2:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = _history(run_dir)
    assert 2 <= len(killed_at) < epochs, "the worker must die mid-run"
    md = ModelDir(run_dir)
    assert set(killed_at["epoch"]) <= set(md.checkpoint_files())  # every recorded epoch saved
    assert not (run_dir / "result.json").exists()

    result = train_model(windows, model, run_dir, epochs=epochs, seed=11, threads=1)
    done = _history(run_dir)
    assert done["epoch"].tolist() == list(range(1, epochs + 1))
    assert result["resumed_from_epoch"] >= len(killed_at)
    pd.testing.assert_frame_equal(done.iloc[: len(killed_at)], killed_at)
    assert sorted(md.checkpoint_files()) == list(range(1, epochs + 1))
    assert not [p for p in md.checkpoint_dir.iterdir() if p.name.startswith(".")]
    straight = train_model(windows, model, tmp_path / "straight", epochs=epochs, seed=11,
                           threads=1)
    assert straight["epochs_completed"] == epochs
    pd.testing.assert_frame_equal(done[["epoch", "loss", "val_loss"]],
                                  _history(tmp_path / "straight")[["epoch", "loss", "val_loss"]])


def test_best_only_keeps_best_and_last(windows, tmp_path):
    run_dir = tmp_path / "best"
    result = train_model(windows, "cnn2_relu", run_dir, epochs=4, seed=1, checkpoints="best")
    history = _history(run_dir)
    best = int(history.loc[history["val_loss"].idxmin(), "epoch"])
    assert set(ModelDir(run_dir).checkpoint_files()) == {best, 4}
    assert result["best_epoch"] == best and result["best_checkpoint"]


def test_early_stopping_rule_and_run(windows, tmp_path):
    assert not _stopped_early([3.0, 2.0, 1.0], 2)
    assert _stopped_early([1.0, 2.0, 3.0], 2)
    assert not _stopped_early([1.0, 2.0], 2)
    assert _stopped_early([1.0, float("nan")], 1)
    assert not _stopped_early([1.0, 2.0, 3.0], None)
    run_dir = tmp_path / "early"
    result = train_model(windows, "cnn2_leaky", run_dir, epochs=30, seed=2, patience=1,
                         learning_rate=0.05)
    losses = _history(run_dir)["val_loss"].tolist()
    assert result["stopped_early"] == (len(losses) < 30)
    if result["stopped_early"]:
        assert losses[-1] >= min(losses[:-1])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"model": "cnn9_relu"}, "unknown model"),
        ({"epochs": 0}, "epochs must be"),
        ({"epochs": -3}, "epochs must be"),
        ({"batch_size": 0}, "batch size"),
        ({"dataset": "missing.h5"}, "window file not found"),
    ],
)
def test_bad_input_raises_before_writing(kwargs, message, windows, tmp_path):
    run_dir = tmp_path / "runs" / "r" / "m"
    dataset = tmp_path / kwargs.pop("dataset") if "dataset" in kwargs else windows
    args = {"model": "cnn2_relu", "epochs": 2, "batch_size": 8, **kwargs}
    with pytest.raises(ValueError, match=message):
        train_model(dataset, args["model"], run_dir, epochs=args["epochs"],
                    batch_size=args["batch_size"])
    assert not (tmp_path / "runs").exists()


def test_different_training_in_the_same_folder_is_refused(windows, tmp_path):
    run_dir = tmp_path / "same"
    train_model(windows, "cnn2_relu", run_dir, epochs=1, seed=1)
    before = {p.name: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    with pytest.raises(ValueError, match="seed differ"):
        train_model(windows, "cnn2_relu", run_dir, epochs=2, seed=2)
    assert {p.name: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()} == before


def test_run_store_history_and_checkpoints(tmp_path):
    store = RunStore(tmp_path / "runs")
    md = store.model("20260101T000000Z-aaaaaa", "cnn2_relu")
    md.append_history(1, 0.5, 0.25, 1.0)
    md.append_history(2, 0.1 + 0.2, 1e-7, 1.0)
    with pytest.raises(ValueError, match="next is 3"):
        md.append_history(2, 0.1, 0.1, 1.0)
    with pytest.raises(ValueError, match="next is 3"):
        md.append_history(4, 0.1, 0.1, 1.0)
    h = store.read_history("20260101T000000Z-aaaaaa", "cnn2_relu")
    assert h["epoch"].tolist() == [1, 2] and h["loss"].iloc[1] == 0.1 + 0.2  # exact floats
    md.checkpoint_dir.mkdir(parents=True)
    for epoch, val in [(1, 0.25), (2, 1e-7), (3, 0.5)]:
        (md.checkpoint_dir / checkpoint_name(epoch, val)).write_bytes(b"x")
    (md.checkpoint_dir / ".epoch-004-0.1.partial-1.keras").write_bytes(b"x")
    assert sorted(md.checkpoints()) == [1, 2]  # epoch 3 is not recorded
    removed = md.discard_unrecorded()
    assert len(removed) == 2 and sorted(md.checkpoint_files()) == [1, 2]
    assert parse_checkpoint_name("epoch-012-0.000123.keras") == 12
    assert parse_checkpoint_name("epoch-1-x.h5") is None
    with pytest.raises(ValueError, match="invalid run id"):
        store.model_dir("../etc", "cnn2_relu")
    store.write_run("20260101T000000Z-aaaaaa", {"created": "2026-01-01T00:00:00+00:00"})
    store.write_run("b-older-name", {"created": "2026-02-01T00:00:00+00:00"})
    store.model("b-older-name", "cnn2_relu").append_history(1, 0.5, 0.25, 1.0)
    assert store.latest_run() == "b-older-name"  # by "created", never by name or file time
    # a run that never recorded an epoch (a failed start) is never the latest
    store.write_run("c-failed-start", {"created": "2026-03-01T00:00:00+00:00"})
    assert store.runs()[-1] == "c-failed-start" and store.latest_run() == "b-older-name"
    assert store.models("20260101T000000Z-aaaaaa") == []
