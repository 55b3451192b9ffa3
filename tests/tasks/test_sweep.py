"""The regularization sweep: its settings grid, the tidy table, and a tiny real sweep on the
Prefect API whose price-scale MSE is the scaled MSE through the window file's scaler."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tasks.training.sweep import SWEEP_COLUMNS, sweep_settings, tidy_rows
from tests.support.windows import write_real_windows


def test_settings_train_strength_zero_once():
    settings = sweep_settings(["bias", "kernel", "recurrent", "activity"], ["l1", "l2"],
                              [0, 0.1, 0.01, 0.001, 0.0001])
    assert settings[0] == (None, None, 0.0)
    assert len(settings) == 1 + 4 * 2 * 4
    assert ("recurrent", "l1", 0.001) in settings
    with pytest.raises(ValueError):
        sweep_settings(["weights"], ["l1"], [0.1])
    with pytest.raises(ValueError):
        sweep_settings(["bias"], ["l3"], [0.1])
    with pytest.raises(ValueError, match=">= 0"):
        sweep_settings(["bias"], ["l1"], [-0.1])


def test_tidy_rows_repeat_the_unregularized_model_under_every_target():
    zero = {"rows": [{"target": None, "kind": None, "strength": 0.0, "repeat": 0,
                      "val_mse_scaled": 1.0, "val_mse_price": 2.0, "best_val_loss": 1.0}]}
    reg = {"rows": [{"target": "bias", "kind": "l2", "strength": 0.01, "repeat": 0,
                     "val_mse_scaled": 3.0, "val_mse_price": 4.0, "best_val_loss": 3.0}]}
    rows = tidy_rows([zero, reg], ["bias", "kernel"], ["l2"])
    assert [(r["target"], r["kind"], r["strength"]) for r in rows] == [
        ("bias", "l2", 0.01), ("bias", "l2", 0.0), ("kernel", "l2", 0.0)]


@pytest.mark.slow
def test_tiny_sweep_writes_the_tidy_table(prefect_api, data_dir, tmp_path):
    from flows.sweep import sweep
    from tasks.windows import open_dataset

    windows = write_real_windows(tmp_path / "sweep.h5", 64, 4, stride=16)
    out = sweep(targets=["bias"], kinds=["l2"], strengths=[0.0, 0.01], repeats=2, epochs=1,
                parallel=2, devices="cpu", dataset=str(windows), data_dir=str(data_dir),
                run_id="sweep-test")
    table = pd.read_csv(out)
    assert tuple(table.columns) == SWEEP_COLUMNS
    assert len(table) == 2 * 2
    assert set(table["strength"]) == {0.0, 0.01} and set(table["repeat"]) == {0, 1}
    assert (table["target"] == "bias").all() and (table["kind"] == "l2").all()
    assert np.isfinite(table[["val_mse_scaled", "val_mse_price"]].to_numpy()).all()
    # Different repeats use different seeds; the regularized setting changes the model.
    assert table["val_mse_scaled"].nunique() == 4
    with open_dataset(str(windows)) as ds:
        scale = ds.scaler.params["scale"][ds.target_feature]
    np.testing.assert_allclose(table["val_mse_price"], table["val_mse_scaled"] / scale**2,
                               rtol=1e-3)
