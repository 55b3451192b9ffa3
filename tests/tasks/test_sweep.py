"""The regularization sweep: its settings grid, the tidy table, and a tiny real sweep on the
Prefect API whose price-scale MSE is the scaled MSE through the window file's scaler."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from storage.runs import RunStore
from tasks.training.sweep import SWEEP_COLUMNS, sweep_settings, tidy_rows
from tests.support.windows import write_real_windows


def _sweep_csv(value: float) -> str:
    return "target,kind,strength,repeat,val_mse_scaled,val_mse_price,best_val_loss\n" + "".join(
        f"kernel,l2,{s},{r},{value / 1e6},{value + r + s},{value / 1e6}\n"
        for s in (0, 0.01) for r in range(3)
    )


def test_a_run_draws_only_sweeps_made_on_its_own_window_file(tmp_path):
    """Issue 15 item 13: a training run's report took the newest sweep.csv of any run, whatever
    its market or windows. Now: only a sweep on the same window file, and it says which."""
    from tasks.report.inputs import report_fingerprint
    from tasks.report.render import render_report
    from tasks.report.sweep import load_sweep
    from tests.support.reports import _evaluation

    store = RunStore(tmp_path / "runs")
    runs = [("train-a", "aaaa", None), ("sweep-same", "aaaa", 1000.0),
            ("train-b", "bbbb", None), ("sweep-other", "cccc", 5000.0)]  # oldest first
    for i, (run_id, ds, value) in enumerate(runs):
        kind = "train" if value is None else "sweep"
        store.write_run(run_id, {"dataset_id": ds, "kind": kind,
                                 "created": f"2026-01-0{i + 1}T00:00:00+00:00"})
        if value is not None:
            (store.run_dir(run_id) / "sweep.csv").write_text(_sweep_csv(value))

    found = load_sweep(store, "train-a")
    assert found.run_id == "sweep-same" and found.path.parent.name == "sweep-same"
    assert found.table["val_mse_price"].min() == 1000.0  # not the newer sweep's 5000
    assert load_sweep(store, "train-b") is None  # the only newer sweep is on other windows
    assert load_sweep(store, "sweep-other").run_id == "sweep-other"  # its own table

    # the borrowed table is part of the report's inputs: changing it makes the report stale
    before = report_fingerprint(store, "train-a")
    (store.run_dir("sweep-same") / "sweep.csv").write_text(_sweep_csv(1001.0))
    assert report_fingerprint(store, "train-a") != before
    before_b = report_fingerprint(store, "train-b")
    (store.run_dir("sweep-other") / "sweep.csv").write_text(_sweep_csv(6000.0))
    assert report_fingerprint(store, "train-b") == before_b

    ev = _evaluation()
    ev.meta["dataset_id"] = "aaaa"
    rendered = render_report(ev, load_sweep(store, "train-a"), None)
    assert "regularization" in rendered["figures"]
    assert "Regularization sweep of run sweep-same, made on this run&#x27;s window file (aaaa)" \
        in rendered["html"]
    assert rendered["meta"]["sweep_run"] == "sweep-same"
    assert "regularization" not in render_report(ev, None, None)["figures"]


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
def test_tiny_sweep_writes_the_tidy_table_and_is_reported_on_its_own(prefect_api, data_dir,
                                                                    tmp_path):
    """The tidy table; then (issue 15 item 13) ``report`` of the sweep run renders the sweep's
    own report (on main: "no model recorded a single epoch"), and is the latest run."""
    import json
    from pathlib import Path

    from flows.report import report
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

    # the sweep's own report: box plots, a row per setting, its dataset and settings
    path = Path(report(run_id="sweep-test", data_dir=str(data_dir)))
    assert path == data_dir / "reports" / "sweep-test" / "report.html"
    text = path.read_text()
    assert "Regularization sweep: run sweep-test" in text and 'alt="regularization"' in text
    meta = json.loads((path.parent / "evaluation.json").read_text())
    assert meta["kind"] == "sweep" and meta["model"] == "lstm_tanh_leaky"
    assert meta["dataset_id"] == "sweep" and meta["repeats"] == 2 and meta["epochs"] == 1
    assert meta["strengths"] == [0.0, 0.01] and meta["targets"] == ["bias"]
    for key in ("dataset_id", "symbol", "interval", "protocol"):
        assert str(meta[key]) in text
    board = json.loads((path.parent / "leaderboard.json").read_text())
    assert sorted((r["strength"], r["repeats"]) for r in board) == [("0", 2), ("0.01", 2)]
    for r in board:  # each setting's median is its repeats' median, from the table
        part = table[table["strength"] == float(r["strength"])]
        assert r["median_val_mse_price"] == pytest.approx(part["val_mse_price"].median())
    # the plain report (latest run) is this sweep, and is reused while nothing changed
    assert report(data_dir=str(data_dir)) == str(path)
