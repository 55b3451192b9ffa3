"""Figures: each function returns a Figure that renders to a valid PNG, and draws what it says."""

from __future__ import annotations

import io

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from tasks.figures import (
    actual_series,
    actual_vs_predicted_figure,
    figure_png,
    horizon_error_figure,
    leaderboard_figure,
    learning_curves_figure,
    non_overlapping_windows,
    regularization_figure,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
FIVE_MIN = 300_000


def _windows(n=40, k=4, stride=2, seed=0):
    rng = np.random.default_rng(seed)
    close = 4000 + np.cumsum(rng.normal(0, 5, n * stride + k + 10))
    t0 = 1_500_000_000_000
    starts = np.arange(n) * stride
    times = t0 + (starts[:, None] + np.arange(k)) * FIVE_MIN
    actual = close[starts[:, None] + np.arange(k)]
    predicted = actual + rng.normal(0, 3, actual.shape)
    return times, actual, predicted


def _assert_png(fig: Figure):
    data = figure_png(fig, dpi=60)
    assert data.startswith(PNG_SIGNATURE)
    img = mpimg.imread(io.BytesIO(data), format="png")
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100


def test_non_overlapping_windows_and_actual_series():
    times, actual, _ = _windows(n=10, k=4, stride=2)
    keep = non_overlapping_windows(times)
    assert keep.tolist() == [0, 2, 4, 6, 8]  # windows 2 apart, 4 steps long
    series = actual_series(times, actual)
    assert series.index.is_unique and series.index.is_monotonic_increasing
    assert len(series) == 2 * 9 + 4


def test_actual_vs_predicted_draws_line_and_dots():
    times, actual, predicted = _windows()
    fig = actual_vs_predicted_figure(
        times, actual, predicted, model="gru_tanh_leaky", split_label="test", last_windows=5
    )
    ax = fig.axes[0]
    assert len(ax.lines) == 1  # the actual close
    dots = ax.collections[0].get_offsets()
    assert len(dots) == 5 * 4  # five forecasts of four steps
    assert "gru_tanh_leaky" in ax.get_title() and "USD" in ax.get_ylabel()
    _assert_png(fig)


def test_learning_curves_mark_the_chosen_epoch():
    h = pd.DataFrame({"epoch": [1, 2, 3], "loss": [0.3, 0.2, 0.1], "val_loss": [0.4, 0.15, 0.2]})
    nan = h.assign(val_loss=[0.4, np.nan, np.nan])
    fig = learning_curves_figure(
        {"a": h, "b": nan}, {"a": 2, "b": None}, statuses={"a": "ok", "b": "diverged"}
    )
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in visible] == ["a", "b (diverged)"]
    labels = [line.get_label() for line in visible[0].lines]
    assert "chosen: epoch 2" in labels
    assert not any("chosen" in line.get_label() for line in visible[1].lines)
    _assert_png(fig)


def test_leaderboard_bars_with_baseline_lines():
    fig = leaderboard_figure(
        {"cnn2_relu": 120.0, "lstm_tanh_leaky": 95.0, "broken": float("nan")},
        {"persistence": 100.0, "lag": 140.0},
        split_label="test",
        champion="lstm_tanh_leaky",
    )
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["lstm_tanh_leaky", "cnn2_relu"]
    assert len(ax.patches) == 2
    assert len(ax.get_legend().get_texts()) == 2
    _assert_png(fig)


def test_horizon_error_one_line_per_entry():
    fig = horizon_error_figure(
        {"gru": [1, 2, 3], "persistence": [1.5, 2.5, 3.5], "broken": [np.nan] * 3},
        split_label="validation",
        candle_minutes=5,
    )
    ax = fig.axes[0]
    assert [line.get_label() for line in ax.lines] == ["gru", "persistence"]
    assert "5 min" in ax.get_xlabel()
    _assert_png(fig)


def test_regularization_box_plots():
    rows = [
        {
            "target": target,
            "kind": kind,
            "strength": s,
            "repeat": r,
            "val_mse_scaled": 1e-4 * (1 + s + r),
            "val_mse_price": 1e4 * (1 + s + r),
        }
        for target in ("kernel", "bias", "activity")
        for kind in ("l1", "l2")
        for s in (0.0, 0.01, 0.1)
        for r in range(3)
    ]
    fig = regularization_figure(pd.DataFrame(rows))
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in visible] == [
        "kernel regularizer",
        "bias regularizer",
        "activity regularizer",
    ]
    assert len(visible[0].get_xticklabels()) == 6
    _assert_png(fig)
    with pytest.raises(ValueError, match="lacks columns"):
        regularization_figure(pd.DataFrame({"target": ["kernel"]}))


def test_actual_line_covers_inputs_and_breaks_at_gaps():
    from tasks.figures import break_gaps

    # two non-overlapping windows (N=3, K=2) with a 10-candle hole between them
    t = 1_500_000_000_000 + np.array([[0, 1, 2, 3, 4], [15, 16, 17, 18, 19]]) * FIVE_MIN
    closes = np.arange(10, dtype=float).reshape(2, 5) + 100
    fig = actual_vs_predicted_figure(
        t[:, 3:],
        closes[:, 3:],
        closes[:, 3:] + 1,
        model="m",
        split_label="test",
        input_times=t[:, :3],
        inputs=closes[:, :3],
    )
    line = fig.axes[0].lines[0]
    y = np.asarray(line.get_ydata(), dtype=float)
    assert np.isnan(y).sum() == 1  # the hole is not bridged
    assert np.nanmin(y) == 103.0  # starts at the first forecast; the 2nd window's inputs drawn
    assert 105.0 in y
    s = pd.Series([1.0, 2.0, 3.0], index=pd.to_datetime([0, 1, 2], unit="m", utc=True))
    assert break_gaps(s).isna().sum() == 0
