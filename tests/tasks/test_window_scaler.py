"""Scale-free windows (``scaler="window"``) and residual heads: real candles, real window files,
real Keras models. Each window divided by its last input close round-trips to prices; an
untrained residual model is persistence exactly; a run scored under it inverts per window."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from storage.errors import BadInputError
from tasks.scaling import Scaler, ScalerKind, residual_mask
from tasks.windows.spec import WindowSpec
from tests.support.windows import real_candles, write_real_windows

PAST, FUTURE = 64, 4
FEATURES = ("close", "volume_base", "volume_quote", "high")


@pytest.fixture(scope="module")
def window_file(tmp_path_factory) -> Path:
    return write_real_windows(
        tmp_path_factory.mktemp("wscale") / "w.h5", PAST, FUTURE, stride=16, rows=3000,
        features=FEATURES, scaler="window",
    )


def test_each_window_is_divided_by_its_last_close_and_inverts_to_prices(window_file):
    from tasks.windows import open_dataset

    with open_dataset(str(window_file)) as ds:
        assert ds.scaler.kind is ScalerKind.WINDOW
        for split in ("train", "validation", "test"):
            x, y = ds.split_arrays(split)
            x_orig, y_orig = ds.split_originals(split)
            anchors = ds.split_anchors(split)
            close = FEATURES.index("close")
            assert len(x) > 0
            # anchors are the last input closes of the stored (unscaled) candles
            np.testing.assert_array_equal(anchors, x_orig[:, -1, close])
            assert np.all(x[:, -1, close] == 1.0)
            # quote features divided, base-currency volume kept as it is
            for f, name in enumerate(FEATURES):
                want_x = x_orig[:, :, f] / anchors[:, None] if name != "volume_base" \
                    else x_orig[:, :, f]
                np.testing.assert_allclose(x[:, :, f], want_x, rtol=1e-15)
            # back to prices, per window: the stored closes within float64 rounding
            back = ds.scaler.target_to_price(y[:, :, close], close, anchors)
            np.testing.assert_allclose(back, y_orig[:, :, close], rtol=1e-14, atol=0)
            inputs_back = ds.scaler.target_to_price(x[:, :, close], close, anchors)
            np.testing.assert_allclose(inputs_back, x_orig[:, :, close], rtol=1e-14, atol=0)


def test_window_scaler_does_not_depend_on_other_windows(window_file, tmp_path):
    """Scale-free: a window's scaled values are the same whatever else the file holds."""
    from tasks.windows import open_dataset

    shorter = write_real_windows(tmp_path / "short.h5", PAST, FUTURE, stride=16, rows=2000,
                                 features=FEATURES, scaler="window")
    with open_dataset(str(window_file)) as a, open_dataset(str(shorter)) as b:
        xa, _ = a.split_arrays("train")
        xb, _ = b.split_arrays("train")
        ta, _ = a.split_times("train")
        tb, _ = b.split_times("train")
    common = np.intersect1d(ta[:, 0], tb[:, 0])
    assert common.size > 5
    ia = np.searchsorted(ta[:, 0], common)
    ib = np.searchsorted(tb[:, 0], common)
    np.testing.assert_array_equal(xa[ia], xb[ib])


def test_scaler_json_round_trip_and_refusals():
    s = Scaler.for_windows(["close", "log_return", "volume_quote"])
    back = Scaler.from_json(s.to_json())
    assert back == s and back.n_features == 3 and back.anchor_feature == 0
    assert back.params["divide"] == [1.0, 0.0, 1.0]
    assert residual_mask(["close", "log_return"]) == (1.0, 0.0)
    with pytest.raises(ValueError, match="not fit on rows"):
        Scaler.fit(np.ones((3, 1)), "window")
    with pytest.raises(BadInputError, match="^scaler: the seed protocol"):
        WindowSpec(protocol="seed", scaler="window")
    with pytest.raises(BadInputError, match="^scaler: window .* add close"):
        WindowSpec(scaler="window", features=("log_return",))


@pytest.mark.parametrize("model", ["cnn3_leaky", "lstm_tanh_relu", "gru_tanh_leaky", "cnn4_relu"])
def test_residual_model_at_initialisation_is_persistence_exactly(model, window_file, tmp_path):
    import keras

    from tasks.baselines import persistence_forecast
    from tasks.selection import load_checkpoint
    from tasks.windows import open_dataset
    from tasks.zoo import build_model, target_predictions

    with open_dataset(str(window_file)) as ds:
        x, _ = ds.split_arrays("test")
        target = ds.target_feature
        mask = residual_mask(ds.features)
    net = build_model(model, PAST, FUTURE, len(FEATURES), residual=mask, target=target)
    pred = target_predictions(model, np.asarray(net.predict(x, verbose=0)), target)
    np.testing.assert_array_equal(pred, persistence_forecast(x, target, FUTURE).astype(pred.dtype))
    # the residual head is stock layers only: saved and reloaded with safe_mode
    path = tmp_path / "m.keras"
    net.save(path)
    again = load_checkpoint(path)
    np.testing.assert_array_equal(np.asarray(again.predict(x, verbose=0)),
                                  np.asarray(net.predict(x, verbose=0)))
    # and it is not frozen at persistence: only the anchor is fixed
    trainable = {w.path for w in net.trainable_weights}
    assert not any("anchor" in p for p in trainable) and trainable
    assert isinstance(net, keras.Model)


def test_minmax_models_keep_the_tutorial_layers():
    """Without the window scaler nothing changes: a Sequential stack, no residual layers."""
    from tasks.zoo import build_model

    for model in ("cnn2_relu", "gru_tanh_relu"):
        net = build_model(model, 256, 16, 1)
        names = [layer.name for layer in net.layers]
        assert not {"residual", "anchor", "last_input"} & set(names), names


def test_a_run_under_the_window_scaler_scores_in_prices(tmp_path):
    """Train (1 epoch), then evaluate: persistence and the model are scored in USD, per window."""
    from storage.layout import DataLayout
    from storage.runs import RunStore, new_run_id
    from tasks.evaluation import evaluate_run
    from tasks.training.loop import train_model
    from tasks.windows import WindowSpec, open_dataset, write_windows

    layout = DataLayout.at(tmp_path / "data")
    spec = WindowSpec(past=PAST, future=FUTURE, stride=8, scaler="window")
    summary = write_windows(real_candles(3000), "BTC_USDT", "MINUTE_5", spec, layout.windows)
    store = RunStore(layout.runs)
    run_id = new_run_id()
    result = train_model(Path(summary["path"]), "gru_tanh_relu",
                         store.model_dir(run_id, "gru_tanh_relu"), epochs=1, batch_size=32,
                         seed=0, threads=1)
    assert result
    record = store.model_dir(run_id, "gru_tanh_relu") / "spec.json"
    assert '"residual"' in record.read_text()
    store.write_run(run_id, {"dataset_id": summary["dataset_id"], "dataset_path": summary["path"],
                             "protocol": "honest", "models": ["gru_tanh_relu"],
                             "flow_run_id": None})
    ev = evaluate_run(layout.root, run_id)
    with open_dataset(summary["path"]) as ds:
        x_orig, y_orig = ds.split_originals("test")
    last, actual = x_orig[:, -1, 0], y_orig[:, :, 0]
    persistence = ev.entry("persistence").evaluation
    assert persistence.mse == pytest.approx(np.mean((actual - last[:, None]) ** 2), rel=1e-12)
    model = ev.entry("gru_tanh_relu").evaluation
    assert model is not None and np.isfinite(model.mse)
    # one epoch from persistence stays near it, in prices (a scaled-units MSE would be ~1e-5)
    assert 0.2 * persistence.mse < model.mse < 5 * persistence.mse
    fc = ev.champion_forecast
    np.testing.assert_allclose(fc.actual, actual[-len(fc.actual):], rtol=1e-14)


def test_out_of_range_share_and_verdicts_on_a_real_run(tmp_path):
    """The share in the run's metadata is the test inputs outside the training inputs' range
    (computed here from the stored arrays); every leaderboard row carries a verdict."""
    from storage.layout import DataLayout
    from storage.runs import RunStore, new_run_id
    from tasks.evaluation import evaluate_run
    from tasks.report.leaderboard import leaderboard_rows
    from tasks.training.loop import train_model
    from tasks.windows import WindowSpec, open_dataset, write_windows

    layout = DataLayout.at(tmp_path / "data")
    spec = WindowSpec(past=PAST, future=FUTURE, stride=8)  # minmax: the test drifts out of range
    summary = write_windows(real_candles(3000), "BTC_USDT", "MINUTE_5", spec, layout.windows)
    store = RunStore(layout.runs)
    run_id = new_run_id()
    train_model(Path(summary["path"]), "cnn2_relu", store.model_dir(run_id, "cnn2_relu"),
                epochs=1, batch_size=32, seed=0, threads=1)
    store.write_run(run_id, {"dataset_id": summary["dataset_id"], "dataset_path": summary["path"],
                             "protocol": "honest", "models": ["cnn2_relu"], "flow_run_id": None})
    ev = evaluate_run(layout.root, run_id)
    with open_dataset(summary["path"]) as ds:
        xt, _ = ds.split_arrays("train")
        xe, _ = ds.split_arrays("test")
    lo, hi = xt[:, :, 0].min(), xt[:, :, 0].max()
    want = np.mean((xe[:, :, 0] < lo) | (xe[:, :, 0] > hi))
    assert ev.meta["out_of_range_share"] == pytest.approx(want)
    rows = {r["model"]: r for r in leaderboard_rows(ev)}
    assert rows["persistence"]["verdict"].startswith("the reference")
    assert all(r["verdict"] for r in rows.values())
