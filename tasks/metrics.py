"""Forecast metrics, computed on the same windows for every leaderboard entry.

Everything here is pure numpy: predictions and actuals come in as ``(n_windows, horizon)``
arrays of the target feature (``close``), once in scaled units and once in price units.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Protocol

import numpy as np

from storage.errors import BadInputError


class InverseScaler(Protocol):
    """Anything with ``inverse_transform((m, n_features)) -> (m, n_features)``."""

    def inverse_transform(self, x: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class ForecastMetrics:
    """Scores of one forecaster on one set of windows (price units unless named ``_scaled``)."""

    n_windows: int
    mse_scaled: float
    mse: float
    rmse: float
    mae: float
    mape: float
    direction_accuracy: float
    skill: float
    persistence_mse: float
    mse_by_step: tuple[float, ...]
    mae_by_step: tuple[float, ...]
    mase: float = float("nan")  # MAE / in-sample persistence MAE of the training windows

    def to_dict(self) -> dict[str, object]:
        """JSON-friendly dict (tuples become lists, NaN becomes None)."""
        out: dict[str, object] = {}
        for key, value in asdict(self).items():
            if isinstance(value, tuple):
                out[key] = [finite_or_none(v) for v in value]
            elif isinstance(value, float):
                out[key] = finite_or_none(value)
            else:
                out[key] = value
        return out


def finite_or_none(value: float | None) -> float | None:
    """``value`` as a float, or None when it is None, NaN or infinite (JSON has no NaN)."""
    if value is None:
        return None
    v = float(value)
    return v if np.isfinite(v) else None


def target_channel(y: np.ndarray, target: int, horizon: int | None = None) -> np.ndarray:
    """The target feature: ``(n, K, F)``, ``(n, K, 1)`` or ``(n, K)`` -> ``(n, K)``.

    CNNs in the zoo predict every feature ``(n, K, F)``; recurrent models predict the target
    only, ``(n, K)`` (or ``(n, K, 1)``).
    """
    arr = np.asarray(y)
    if arr.ndim == 3:
        arr = arr[:, :, 0] if arr.shape[2] == 1 else arr[:, :, target]
    elif arr.ndim != 2:
        raise BadInputError(f"expected (n, K) or (n, K, F) array, got shape {arr.shape}")
    if horizon is not None and arr.shape[1] != horizon:
        raise BadInputError(f"expected horizon {horizon}, got shape {arr.shape}")
    return np.asarray(arr, dtype=np.float64)


def inverse_target(
    values: np.ndarray, scaler: InverseScaler, target: int, n_features: int
) -> np.ndarray:
    """Invert the scaling of target-feature values of any shape (same shape back, price units).

    The scaler works per feature, so the target is placed in its column of an otherwise-zero
    ``(m, n_features)`` array, inverted, and read back.
    """
    arr = np.asarray(values, dtype=np.float64)
    flat = np.zeros((arr.size, n_features), dtype=np.float64)
    flat[:, target] = arr.reshape(-1)
    restored = np.asarray(scaler.inverse_transform(flat), dtype=np.float64)
    return restored[:, target].reshape(arr.shape)


def mse_by_step(actual: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Mean squared error per horizon step: ``(n, K)`` x2 -> ``(K,)``."""
    return np.mean((np.asarray(predicted) - np.asarray(actual)) ** 2, axis=0)


def window_mse(actual: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Per-window loss, the mean squared error over the K steps: ``(n, K)`` x2 -> ``(n,)``."""
    a = np.asarray(actual, dtype=np.float64)
    p = np.asarray(predicted, dtype=np.float64)
    if a.shape != p.shape or a.ndim != 2:
        raise BadInputError(f"actual {a.shape} and predicted {p.shape} must both be (n, K)")
    return np.mean((p - a) ** 2, axis=1)


def direction_accuracy(actual: np.ndarray, predicted: np.ndarray, last: np.ndarray) -> float:
    """Share of (window, step) cells where the predicted move from the last input close has the
    sign of the actual move: ``(n, K)``, ``(n, K)``, ``(n,)`` -> float in [0, 1].

    Only cells where both moves are non-zero count: a cell where the price did not move has no
    direction to hit, and a predicted move of exactly zero is no direction forecast. NaN when no
    cell is left, e.g. for persistence ("no move" everywhere) or when nothing moved.
    """
    ref = np.asarray(last, dtype=np.float64)[:, None]
    actual_sign = np.sign(np.asarray(actual) - ref)
    predicted_sign = np.sign(np.asarray(predicted) - ref)
    scored = (actual_sign != 0) & (predicted_sign != 0)
    if not scored.any():
        return float("nan")
    return float(np.mean(actual_sign[scored] == predicted_sign[scored]))


def persistence_mae(actual: np.ndarray, last_close: np.ndarray) -> float:
    """Persistence's MAE, ``mean |actual_k - last close|`` over all windows and K steps, price
    units: ``(n, K)``, ``(n,)`` -> float; NaN when there are no windows.

    On the TRAINING windows this is the MASE scale (the in-sample naive error).
    """
    a = np.asarray(actual, dtype=np.float64)
    last = np.asarray(last_close, dtype=np.float64)
    if a.ndim != 2 or last.shape != (a.shape[0],):
        raise BadInputError(f"expected (n, K) and (n,), got {a.shape} and {last.shape}")
    if a.size == 0:
        return float("nan")
    return float(np.mean(np.abs(a - last[:, None])))


def mase(mae: float, scale: float | None) -> float:
    """Mean absolute scaled error, ``mae / scale`` (``scale``: :func:`persistence_mae` of the
    training windows); NaN when the scale is missing, zero or not finite (prices never moved)."""
    if scale is None or not np.isfinite(scale) or scale <= 0:
        return float("nan")
    return float(mae) / float(scale)


def mape(actual: np.ndarray, predicted: np.ndarray) -> float:
    """Mean absolute percentage error in percent, over cells with a non-zero actual price."""
    a = np.asarray(actual, dtype=np.float64)
    p = np.asarray(predicted, dtype=np.float64)
    nonzero = a != 0
    if not nonzero.any():
        return float("nan")
    return float(np.mean(np.abs((p[nonzero] - a[nonzero]) / a[nonzero])) * 100.0)


def forecast_metrics(
    actual: np.ndarray,
    predicted: np.ndarray,
    last_close: np.ndarray,
    *,
    actual_scaled: np.ndarray,
    predicted_scaled: np.ndarray,
    mase_scale: float | None = None,
) -> ForecastMetrics:
    """Score a forecast: prices ``(n, K)``, last input close ``(n,)``, scaled twins ``(n, K)``.

    ``skill`` is ``1 - MSE / MSE_persistence`` where persistence repeats ``last_close`` for
    all K steps on the same windows (0 = as good as "the price stays", 1 = perfect).
    ``mase`` is ``MAE / mase_scale``, the in-sample persistence MAE of the training windows
    (:func:`persistence_mae`); NaN without a scale.
    """
    a = np.asarray(actual, dtype=np.float64)
    p = np.asarray(predicted, dtype=np.float64)
    last = np.asarray(last_close, dtype=np.float64)
    if a.shape != p.shape or a.ndim != 2:
        raise BadInputError(f"actual {a.shape} and predicted {p.shape} must both be (n, K)")
    if last.shape != (a.shape[0],):
        raise BadInputError(f"last_close must be ({a.shape[0]},), got {last.shape}")
    if a.shape[0] == 0:
        raise BadInputError("no windows to score")
    err = p - a
    mse = float(np.mean(err**2))
    mae = float(np.mean(np.abs(err)))
    persistence_mse = float(np.mean((last[:, None] - a) ** 2))
    skill = 1.0 - mse / persistence_mse if persistence_mse > 0 else float("nan")
    return ForecastMetrics(
        n_windows=int(a.shape[0]),
        mse_scaled=float(np.mean((np.asarray(predicted_scaled) - np.asarray(actual_scaled)) ** 2)),
        mse=mse,
        rmse=float(np.sqrt(mse)),
        mae=mae,
        mape=mape(a, p),
        direction_accuracy=direction_accuracy(a, p, last),
        skill=float(skill),
        persistence_mse=persistence_mse,
        mse_by_step=tuple(float(v) for v in mse_by_step(a, p)),
        mae_by_step=tuple(float(v) for v in np.mean(np.abs(err), axis=0)),
        mase=mase(mae, mase_scale),
    )


def score_scaled_forecast(
    actual_scaled: np.ndarray,
    predicted_scaled: np.ndarray,
    last_scaled: np.ndarray,
    to_price: Callable[[np.ndarray], np.ndarray],
    *,
    mase_scale: float | None = None,
) -> ForecastMetrics:
    """Score scaled arrays ``(n, K)``, ``(n, K)``, ``(n,)``, inverted with ``to_price``."""
    return forecast_metrics(
        to_price(actual_scaled),
        to_price(predicted_scaled),
        to_price(last_scaled),
        actual_scaled=actual_scaled,
        predicted_scaled=predicted_scaled,
        mase_scale=mase_scale,
    )


def out_of_range_share(train_inputs: np.ndarray, eval_inputs: np.ndarray) -> float:
    """Share of evaluation input values (target feature, scaled units, any shape) outside the
    [min, max] of the training inputs: what a bounded network was never shown. NaN if empty."""
    train = np.asarray(train_inputs, dtype=np.float64)
    ev = np.asarray(eval_inputs, dtype=np.float64)
    if train.size == 0 or ev.size == 0:
        return float("nan")
    lo, hi = np.nanmin(train), np.nanmax(train)
    return float(np.mean((ev < lo) | (ev > hi)))
