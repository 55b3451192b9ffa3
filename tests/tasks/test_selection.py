"""Checkpoint selection on crafted histories, checkpoint lookup by epoch, safe loading."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

from storage.errors import CorruptStoreError
from storage.runs import checkpoint_name, parse_checkpoint_name, scan_checkpoints
from tasks.selection import (
    CheckpointMissingError,
    ModelStatus,
    checkpoint_for_epoch,
    choose_best_epoch,
    choose_champion,
    load_checkpoint,
)


def _history(val_losses, losses=None):
    losses = losses if losses is not None else [v * 2 for v in val_losses]
    return pd.DataFrame(
        {"epoch": range(1, len(val_losses) + 1), "loss": losses, "val_loss": val_losses}
    )


def test_argmin_of_val_loss():
    choice = choose_best_epoch("m", _history([0.5, 0.2, 0.3, 0.25]))
    assert choice.status is ModelStatus.OK
    assert (choice.best_epoch, choice.val_loss, choice.loss, choice.n_epochs) == (2, 0.2, 0.4, 4)
    assert choice.eligible


def test_ties_pick_the_earliest_epoch():
    choice = choose_best_epoch("m", _history([0.5, 0.1, 0.3, 0.1, 0.1]))
    assert choice.best_epoch == 2


def test_history_order_on_disk_does_not_matter():
    h = _history([0.5, 0.1, 0.3, 0.1]).iloc[::-1]
    assert choose_best_epoch("m", h).best_epoch == 2


def test_one_epoch():
    choice = choose_best_epoch("m", _history([0.7]))
    assert (choice.status, choice.best_epoch) == (ModelStatus.OK, 1)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_nan_or_inf_marks_diverged(bad):
    choice = choose_best_epoch("m", _history([0.5, 0.1, bad]))
    assert choice.status is ModelStatus.DIVERGED
    assert choice.best_epoch is None and not choice.eligible
    train_nan = choose_best_epoch("m", _history([0.5, 0.4], losses=[0.3, bad]))
    assert train_nan.status is ModelStatus.DIVERGED


def test_empty_history():
    choice = choose_best_epoch("m", _history([]))
    assert choice.status is ModelStatus.NO_HISTORY and choice.best_epoch is None


def test_bad_histories_raise():
    with pytest.raises(ValueError, match="lacks columns"):
        choose_best_epoch("m", pd.DataFrame({"epoch": [1], "loss": [0.1]}))
    with pytest.raises(ValueError, match="duplicate"):
        choose_best_epoch("m", pd.DataFrame({"epoch": [1, 1], "loss": [1, 1], "val_loss": [1, 2]}))
    with pytest.raises(ValueError, match="from 1"):
        choose_best_epoch("m", pd.DataFrame({"epoch": [0], "loss": [1], "val_loss": [1]}))


def test_checkpoint_names_round_trip():
    name = checkpoint_name(3, 0.000123)
    assert name == "epoch-003-0.000123.keras"
    assert parse_checkpoint_name(name) == 3  # the one parser (storage.runs) returns the epoch
    assert parse_checkpoint_name("weights-improvement-20-0.00042.hdf5") is None
    assert parse_checkpoint_name("epoch-1000-nan.keras") == 1000


def test_scan_finds_checkpoints_by_epoch_not_file_time(tmp_path):
    d = tmp_path / "checkpoints"
    d.mkdir()
    for epoch, mtime in [(1, 3_000), (2, 1_000), (3, 2_000)]:
        p = d / checkpoint_name(epoch, 0.1 * epoch)
        p.write_bytes(b"x")
        os.utime(p, (mtime, mtime))
    (d / "notes.txt").write_text("ignored")
    found = scan_checkpoints(d)
    assert sorted(found) == [1, 2, 3]
    assert found[2].name == "epoch-002-0.200000.keras"
    assert checkpoint_for_epoch(found, 2, d) == found[2]
    assert scan_checkpoints(tmp_path / "absent") == {}


def test_missing_checkpoint_error_names_the_file(tmp_path):
    d = tmp_path / "cnn2_relu" / "checkpoints"
    d.mkdir(parents=True)
    (d / checkpoint_name(1, 0.5)).write_bytes(b"x")
    found = scan_checkpoints(d)
    with pytest.raises(CheckpointMissingError, match=r"epoch-004-<val_loss>\.keras") as err:
        checkpoint_for_epoch(found, 4, d)
    assert str(d) in str(err.value)
    gone = d / checkpoint_name(5, 0.1)
    with pytest.raises(CheckpointMissingError, match="epoch-005-0.100000.keras"):
        checkpoint_for_epoch({5: gone}, 5, d)


def test_champion_is_lowest_finite_score():
    assert choose_champion({"a": 0.3, "b": float("nan"), "c": 0.1, "d": 0.1}) == "c"
    assert choose_champion({"a": float("inf")}) is None
    assert choose_champion({}) is None


def test_load_refuses_other_formats(tmp_path):
    p = tmp_path / "model.h5"
    p.write_bytes(b"x")
    with pytest.raises(ValueError, match="only native .keras"):
        load_checkpoint(p)
    with pytest.raises(CheckpointMissingError):
        load_checkpoint(tmp_path / "absent.keras")
    garbage = tmp_path / checkpoint_name(2, 0.1)
    garbage.write_bytes(b"not a zip")
    with pytest.raises(CorruptStoreError, match="epoch-002-0.100000.keras"):
        load_checkpoint(garbage)


def test_safe_load_round_trips_and_rejects_lambdas(tmp_path):
    keras = pytest.importorskip("keras")
    inputs = keras.Input((4, 1))
    outputs = keras.layers.Dense(2)(keras.layers.Flatten()(inputs))
    model = keras.Model(inputs, outputs)
    path = tmp_path / checkpoint_name(1, 0.1)
    model.save(path)
    x = np.random.default_rng(0).normal(size=(3, 4, 1)).astype("float32")
    loaded = load_checkpoint(path)
    assert np.allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0))

    lam = keras.Sequential([keras.Input((2,)), keras.layers.Lambda(lambda t: t * 2)])
    lam_path = tmp_path / "epoch-001-0.1.keras"
    lam.save(lam_path)
    with pytest.raises(ValueError, match="(?i)lambda|safe_mode"):
        load_checkpoint(lam_path)
