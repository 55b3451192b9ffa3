"""The baselines every model must beat, in scaled units of the target feature.

``persistence``: the last input close for all K steps ("the price stays where it is").
``lag``: the tutorial's baseline, the last K inputs repeated as the next K.
``linear``: scikit-learn ``LinearRegression`` from the N past closes to the K future closes,
fit on training windows only.

:class:`Baseline` is the one registry of baseline names; everything else imports it (or
:data:`BASELINE_NAMES`). scikit-learn is imported only when the linear baseline is fit.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING

import numpy as np

from storage.errors import BadInputError
from storage.schema import parse_choice

if TYPE_CHECKING:
    from sklearn.linear_model import LinearRegression


class Baseline(StrEnum):
    """Closed vocabulary of baseline names (as they appear on the leaderboard)."""

    PERSISTENCE = "persistence"
    LAG = "lag"
    LINEAR = "linear"

    @classmethod
    def parse(cls, value: str) -> Baseline:
        """Parse a baseline name, raising a ``ValueError`` that lists the valid ones."""
        return parse_choice(cls, value, "baseline")


#: The baselines' names, in leaderboard order (reserved: no zoo model may take one).
BASELINE_NAMES: tuple[str, ...] = tuple(b.value for b in Baseline)


def _past_target(inputs: np.ndarray, target: int) -> np.ndarray:
    x = np.asarray(inputs)
    if x.ndim != 3:
        raise BadInputError(f"inputs must be (n, N, F), got shape {x.shape}")
    return np.asarray(x[:, :, target], dtype=np.float64)


def persistence_forecast(inputs: np.ndarray, target: int, horizon: int) -> np.ndarray:
    """Repeat the last input close: inputs ``(n, N, F)`` -> ``(n, K)``."""
    past = _past_target(inputs, target)
    return np.repeat(past[:, -1:], horizon, axis=1)


def lag_forecast(inputs: np.ndarray, target: int, horizon: int) -> np.ndarray:
    """The tutorial's lag baseline, the last K inputs as the next K: ``(n, N, F)`` -> ``(n, K)``."""
    past = _past_target(inputs, target)
    if past.shape[1] < horizon:
        raise BadInputError(f"lag needs at least K={horizon} past candles, got {past.shape[1]}")
    return past[:, -horizon:].copy()


def fit_linear(
    train_inputs: np.ndarray, train_outputs: np.ndarray, target: int
) -> LinearRegression:
    """Fit N past closes -> K future closes on training windows ``(n, N, F)``, ``(n, K, F)``."""
    x = _past_target(train_inputs, target)
    y = np.asarray(train_outputs)
    y = np.asarray(y[:, :, target] if y.ndim == 3 else y, dtype=np.float64)
    if x.shape[0] == 0:
        raise BadInputError("the linear baseline needs at least one training window")
    from sklearn.linear_model import LinearRegression

    return LinearRegression().fit(x, y)


def linear_forecast(model: LinearRegression, inputs: np.ndarray, target: int) -> np.ndarray:
    """Predict with a fitted linear baseline: ``(n, N, F)`` -> ``(n, K)``."""
    return np.asarray(model.predict(_past_target(inputs, target)), dtype=np.float64)


def baseline_forecast(
    name: Baseline | str, linear: LinearRegression, inputs: np.ndarray, target: int, horizon: int
) -> np.ndarray:
    """One baseline's forecast ``(n, K)`` for ``inputs`` ``(n, N, F)`` (``linear`` fitted)."""
    baseline = Baseline.parse(name)
    if baseline is Baseline.PERSISTENCE:
        return persistence_forecast(inputs, target, horizon)
    if baseline is Baseline.LAG:
        return lag_forecast(inputs, target, horizon)
    return linear_forecast(linear, inputs, target)


def baseline_forecasts(
    train_inputs: np.ndarray,
    train_outputs: np.ndarray,
    inputs: np.ndarray,
    target: int,
    horizon: int,
) -> dict[Baseline, np.ndarray]:
    """Every baseline's forecast ``(n, K)`` for ``inputs`` ``(n, N, F)`` (linear fit on train)."""
    linear = fit_linear(train_inputs, train_outputs, target)
    return {b: baseline_forecast(b, linear, inputs, target, horizon) for b in Baseline}
