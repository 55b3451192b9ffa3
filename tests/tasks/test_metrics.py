"""Metrics against values worked out by hand on a two-window, two-step series."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.preprocessing import MinMaxScaler

from tasks.metrics import (
    direction_accuracy,
    forecast_metrics,
    inverse_target,
    mape,
    mase,
    persistence_mae,
    score_scaled_forecast,
    target_channel,
    window_mse,
)

# Two windows, K = 2. Last input closes 10 and 19.
ACTUAL = np.array([[10.0, 12.0], [20.0, 18.0]])
PREDICTED = np.array([[10.0, 12.0], [20.0, 20.0]])
LAST = np.array([10.0, 19.0])


def test_forecast_metrics_by_hand():
    m = forecast_metrics(
        ACTUAL, PREDICTED, LAST, actual_scaled=ACTUAL / 10, predicted_scaled=PREDICTED / 10
    )
    # errors: [[0, 0], [0, 2]]
    assert m.n_windows == 2
    assert m.mse == pytest.approx(4 / 4)
    assert m.rmse == pytest.approx(1.0)
    assert m.mae == pytest.approx(2 / 4)
    assert m.mse_scaled == pytest.approx(0.04 / 4)
    assert m.mape == pytest.approx((2 / 18) / 4 * 100)
    # persistence errors: [[0, -2], [-1, 1]] -> MSE 6/4
    assert m.persistence_mse == pytest.approx(6 / 4)
    assert m.skill == pytest.approx(1 - 1.0 / 1.5)
    # moves from last: actual [[0, +2], [+1, -1]], predicted [[0, +2], [+1, +1]];
    # the unmoved cell is left out, 2 of the 3 others agree
    assert m.direction_accuracy == pytest.approx(2 / 3)
    assert m.mse_by_step == pytest.approx((0.0, 2.0))
    assert m.mae_by_step == pytest.approx((0.0, 1.0))


def test_persistence_has_zero_skill_and_no_direction_forecast():
    persistence = np.repeat(LAST[:, None], 2, axis=1)
    m = forecast_metrics(
        ACTUAL, persistence, LAST, actual_scaled=ACTUAL, predicted_scaled=persistence
    )
    assert m.skill == pytest.approx(0.0)
    # "no move" everywhere is no direction forecast: undefined, not 0 %
    assert math.isnan(m.direction_accuracy)
    assert m.to_dict()["direction_accuracy"] is None


def test_a_predicted_move_of_zero_is_left_out_of_direction_accuracy():
    actual = np.array([[12.0, 8.0, 10.0]])
    predicted = np.array([[10.0, 9.0, 11.0]])
    # moves from 10: actual +2, -2, 0; predicted 0, -1, +1. Cell 1 predicts no move, cell 3
    # saw no move: only cell 2 is a direction forecast of a move, and it is right.
    assert direction_accuracy(actual, predicted, np.array([10.0])) == pytest.approx(1 / 1)


# Training windows for the MASE scale (K = 2): last input closes 10 and 19.
TRAIN_ACTUAL = np.array([[11.0, 13.0], [20.0, 17.0]])
TRAIN_LAST = np.array([10.0, 19.0])


def test_mase_by_hand():
    # in-sample persistence errors |actual - last|: [[1, 3], [1, 2]] -> MAE 7/4
    scale = persistence_mae(TRAIN_ACTUAL, TRAIN_LAST)
    assert scale == pytest.approx(7 / 4)
    m = forecast_metrics(
        ACTUAL,
        PREDICTED,
        LAST,
        actual_scaled=ACTUAL,
        predicted_scaled=PREDICTED,
        mase_scale=scale,
    )
    # forecast errors [[0, 0], [0, 2]] -> MAE 2/4; MASE = (2/4) / (7/4) = 2/7
    assert m.mase == pytest.approx(2 / 7)
    # persistence on the test windows: errors [[0, 2], [1, 1]] -> MAE 4/4, MASE 4/7
    persistence = np.repeat(LAST[:, None], 2, axis=1)
    p = forecast_metrics(
        ACTUAL,
        persistence,
        LAST,
        actual_scaled=ACTUAL,
        predicted_scaled=persistence,
        mase_scale=scale,
    )
    assert p.mase == pytest.approx(4 / 7)


def test_mase_is_nan_without_a_scale_or_with_a_zero_one():
    flat = np.full((2, 2), 5.0)
    assert persistence_mae(flat, np.array([5.0, 5.0])) == 0.0  # the prices never moved
    assert math.isnan(persistence_mae(np.zeros((0, 2)), np.zeros(0)))
    for scale in (None, 0.0, float("nan")):
        m = forecast_metrics(
            ACTUAL,
            PREDICTED,
            LAST,
            actual_scaled=ACTUAL,
            predicted_scaled=PREDICTED,
            mase_scale=scale,
        )
        assert math.isnan(m.mase) and m.to_dict()["mase"] is None
    assert mase(3.0, 2.0) == pytest.approx(1.5)
    with pytest.raises(ValueError, match=r"\(n, K\)"):
        persistence_mae(TRAIN_ACTUAL, TRAIN_LAST[:1])


def test_window_mse_is_the_mean_over_the_k_steps():
    # errors [[0, 0], [0, 2]] -> per window (0 + 0) / 2 and (0 + 4) / 2
    assert window_mse(ACTUAL, PREDICTED) == pytest.approx([0.0, 2.0])
    with pytest.raises(ValueError, match=r"\(n, K\)"):
        window_mse(ACTUAL, PREDICTED[:, :1])


def test_to_dict_turns_nan_into_none():
    flat = np.full((1, 2), 5.0)
    m = forecast_metrics(flat, flat, np.array([5.0]), actual_scaled=flat, predicted_scaled=flat)
    d = m.to_dict()
    assert d["skill"] is None  # persistence MSE 0: skill undefined
    assert d["direction_accuracy"] is None  # nothing moved
    assert d["mse_by_step"] == [0.0, 0.0]


def test_direction_and_mape_edge_cases():
    assert math.isnan(direction_accuracy(np.ones((2, 2)), np.ones((2, 2)), np.ones(2)))
    assert mape(np.array([[0.0, 10.0]]), np.array([[1.0, 11.0]])) == pytest.approx(10.0)


def test_shapes_are_checked():
    with pytest.raises(ValueError, match=r"\(n, K\)"):
        forecast_metrics(
            ACTUAL, PREDICTED[:, :1], LAST, actual_scaled=ACTUAL, predicted_scaled=PREDICTED
        )
    with pytest.raises(ValueError, match="last_close"):
        forecast_metrics(
            ACTUAL, PREDICTED, LAST[:1], actual_scaled=ACTUAL, predicted_scaled=PREDICTED
        )
    with pytest.raises(ValueError, match="no windows"):
        empty = np.zeros((0, 2))
        forecast_metrics(empty, empty, np.zeros(0), actual_scaled=empty, predicted_scaled=empty)


def test_target_channel_handles_cnn_and_recurrent_outputs():
    cnn = np.arange(2 * 3 * 4, dtype=float).reshape(2, 3, 4)  # (n, K, F)
    assert np.array_equal(target_channel(cnn, 2), cnn[:, :, 2])
    recurrent = np.arange(6, dtype=float).reshape(2, 3)  # (n, K)
    assert np.array_equal(target_channel(recurrent, 2), recurrent)
    single = recurrent[:, :, None]  # (n, K, 1)
    assert np.array_equal(target_channel(single, 2), recurrent)
    with pytest.raises(ValueError, match="horizon"):
        target_channel(recurrent, 0, horizon=4)
    with pytest.raises(ValueError):
        target_channel(np.zeros(3), 0)


def test_inverse_scaling_round_trips():
    rng = np.random.default_rng(0)
    raw = np.column_stack(
        [rng.uniform(100, 20000, 50), rng.uniform(0, 5, 50), rng.uniform(1, 2, 50)]
    )
    scaler = MinMaxScaler().fit(raw)
    scaled = scaler.transform(raw)
    for target in range(3):
        windows = scaled[:, target].reshape(10, 5)  # any shape comes back in the same shape
        back = inverse_target(windows, scaler, target, n_features=3)
        assert back.shape == (10, 5)
        assert np.allclose(back, raw[:, target].reshape(10, 5))


def test_score_scaled_forecast_inverts_before_scoring():
    # price = 100 * scaled + 1000
    def to_price(x):
        return np.asarray(x) * 100 + 1000

    a = np.array([[0.1, 0.2]])
    p = np.array([[0.1, 0.4]])
    m = score_scaled_forecast(a, p, np.array([0.1]), to_price)
    assert m.mse_scaled == pytest.approx(0.04 / 2)
    assert m.mse == pytest.approx(20.0**2 / 2)
