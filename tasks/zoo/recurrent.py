"""Recurrent forecasters (the tutorial's LSTM and GRU): windows (N, F) -> target horizon (K,).

Layers as the tutorial's listings: ``LSTM|GRU(units, activation="tanh")`` -> ``Dropout`` ->
``Dense(K)`` -> ``ReLU`` or ``LeakyReLU``. The listings disagree on the dropout rate (LSTM.py
0.8; GRU.py, the regularization experiment and the served model 0.2): the default is 0.2.
Regularizers (for the sweep) apply to the recurrent layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import keras

from tasks.zoo.cnn import Activation


class Cell(StrEnum):
    """Recurrent cell type."""

    LSTM = "lstm"
    GRU = "gru"


class RegularizerKind(StrEnum):
    """Weight penalty kind."""

    L1 = "l1"
    L2 = "l2"


class RegularizerTarget(StrEnum):
    """What a regularizer penalizes on the recurrent layer."""

    BIAS = "bias"
    KERNEL = "kernel"
    RECURRENT = "recurrent"
    ACTIVITY = "activity"


@dataclass(frozen=True)
class Regularizer:
    """An L1 or L2 penalty of ``strength`` on one target of the recurrent layer."""

    target: RegularizerTarget
    kind: RegularizerKind
    strength: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "target", RegularizerTarget(self.target))
        object.__setattr__(self, "kind", RegularizerKind(self.kind))
        if not self.strength >= 0.0:
            raise ValueError(f"regularizer strength must be >= 0, got {self.strength}")
        object.__setattr__(self, "strength", float(self.strength))

    def keras(self) -> keras.regularizers.Regularizer:
        """The Keras regularizer object."""
        import keras

        if self.kind is RegularizerKind.L1:
            return keras.regularizers.L1(self.strength)
        return keras.regularizers.L2(self.strength)


@dataclass(frozen=True)
class RecurrentSpec:
    """Hyperparameters of an LSTM/GRU forecaster (stored unchanged in ``spec.json``)."""

    cell: Cell = Cell.LSTM
    units: int = 50
    cell_activation: str = "tanh"
    head: Activation = Activation.LEAKY
    dropout: float = 0.2
    leaky_slope: float = 0.3
    regularizers: tuple[Regularizer, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "cell", Cell(self.cell))
        object.__setattr__(self, "head", Activation(self.head))
        if self.cell_activation not in ("tanh", "relu", "sigmoid", "linear"):
            raise ValueError(f"unsupported cell activation {self.cell_activation!r}")
        if self.units < 1:
            raise ValueError("units must be positive")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        regs = tuple(
            r if isinstance(r, Regularizer) else Regularizer(**r) for r in self.regularizers
        )
        if len({r.target for r in regs}) != len(regs):
            raise ValueError("at most one regularizer per target")
        object.__setattr__(self, "regularizers", regs)


def build(
    past: int,
    future: int,
    n_features: int,
    spec: RecurrentSpec,
    name: str,
    *,
    residual: tuple[float, ...] | None = None,
    target: int = 0,
) -> keras.Model:
    """A recurrent model mapping windows (batch, past, n_features) to (batch, future).

    With ``residual`` the ``Dense(K)`` starts at zero and is added to the target's last input
    before the head activation (see :func:`tasks.zoo.build_model`).
    """
    import keras

    layer_cls = keras.layers.LSTM if spec.cell is Cell.LSTM else keras.layers.GRU
    penalties = {f"{r.target.value}_regularizer": r.keras() for r in spec.regularizers}
    head: keras.layers.Layer = (
        keras.layers.ReLU(name="relu")
        if spec.head is Activation.RELU
        else keras.layers.LeakyReLU(negative_slope=spec.leaky_slope, name="leaky")
    )
    window = keras.Input(shape=(past, n_features), name="window")
    cell = layer_cls(
        spec.units, activation=spec.cell_activation, return_sequences=False,
        name=spec.cell.value, **penalties,
    )
    dropout = keras.layers.Dropout(spec.dropout, name="dropout")
    if residual is None:
        horizon = keras.layers.Dense(future, name="horizon")
        return keras.Sequential([window, cell, dropout, horizon, head], name=name)
    horizon = keras.layers.Dense(
        future, kernel_initializer="zeros", bias_initializer="zeros", name="horizon"
    )
    from tasks.zoo.residual import last_input

    delta = horizon(dropout(cell(window)))
    mask = tuple(v if i == target else 0.0 for i, v in enumerate(residual))
    anchor = last_input(window, past, future, n_features, mask, per_feature=False)
    out = head(keras.layers.Add(name="residual")([delta, anchor]))
    return keras.Model(window, out, name=name)
