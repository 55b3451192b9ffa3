"""Baselines against forecasts worked out by hand on tiny windows."""

from __future__ import annotations

import numpy as np
import pytest

from tasks.baselines import (
    BASELINE_NAMES,
    Baseline,
    baseline_forecast,
    baseline_forecasts,
    fit_linear,
    lag_forecast,
    linear_forecast,
    persistence_forecast,
)


def _windows(starts, past=4, future=2, slope=1.0):
    """Windows of a straight line per start: feature 0 is noise-free volume, feature 1 the close."""
    xs, ys = [], []
    for a in starts:
        close = a + slope * np.arange(past + future)
        volume = np.full(past + future, 7.0)
        both = np.column_stack([volume, close])
        xs.append(both[:past])
        ys.append(both[past:])
    return np.array(xs), np.array(ys)


def test_persistence_repeats_last_close():
    x, _ = _windows([100.0, 200.0])
    assert persistence_forecast(x, target=1, horizon=3).tolist() == [[103.0] * 3, [203.0] * 3]


def test_lag_repeats_last_k_inputs():
    x, _ = _windows([100.0, 200.0])
    assert lag_forecast(x, target=1, horizon=2).tolist() == [[102.0, 103.0], [202.0, 203.0]]
    with pytest.raises(ValueError, match="at least K"):
        lag_forecast(x, target=1, horizon=5)


def test_linear_fits_training_windows_only():
    x_train, y_train = _windows([0.0, 10.0, 20.0, 35.0])
    model = fit_linear(x_train, y_train, target=1)
    # test windows follow a steeper line; the fit must still follow the training relation
    # (next closes = last close + 1, + 2), not the test one
    x_test, y_test = _windows([50.0], slope=2.0)
    pred = linear_forecast(model, x_test, target=1)
    last = x_test[0, -1, 1]
    assert pred.shape == (1, 2)
    assert not np.allclose(pred, y_test[:, :, 1])
    x_line, _ = _windows([50.0])
    assert np.allclose(linear_forecast(model, x_line, target=1), [[54.0, 55.0]])
    assert last == 56.0


def test_baseline_forecasts_all_names_and_shapes():
    x_train, y_train = _windows([0.0, 10.0, 20.0])
    x, _ = _windows([5.0, 6.0, 7.0])
    out = baseline_forecasts(x_train, y_train, x, target=1, horizon=2)
    assert set(out) == set(Baseline)
    assert all(v.shape == (3, 2) for v in out.values())
    linear = fit_linear(x_train, y_train, target=1)
    for name in BASELINE_NAMES:  # one forecast by name, the same as the table's
        assert np.array_equal(baseline_forecast(name, linear, x, 1, 2), out[Baseline(name)])


def test_baseline_names_parse():
    assert Baseline.parse("lag") is Baseline.LAG
    assert BASELINE_NAMES == ("persistence", "lag", "linear")
    with pytest.raises(ValueError, match="persistence, lag, linear"):
        Baseline.parse("arima")


def test_bad_inputs():
    with pytest.raises(ValueError, match=r"\(n, N, F\)"):
        persistence_forecast(np.zeros((2, 4)), 0, 2)
    with pytest.raises(ValueError, match="training window"):
        fit_linear(np.zeros((0, 4, 1)), np.zeros((0, 2, 1)), 0)
