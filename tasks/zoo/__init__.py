"""The model zoo: one registry of the tutorial's Keras forecasters, keyed by name.

``REGISTRY[name]`` is a :class:`ZooEntry` (family, builder, default spec). CNNs predict every
feature of the horizon, (K, F); recurrent models predict the target feature only, (K,).
The baselines (``persistence``, ``lag``, ``linear``) are not Keras models and live with the
report; :data:`BASELINE_NAMES` reserves their names.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import keras
import numpy as np

from tasks.zoo import cnn, recurrent
from tasks.zoo.cnn import Activation, CNNSpec
from tasks.zoo.recurrent import Cell, RecurrentSpec, Regularizer

Spec = CNNSpec | RecurrentSpec


class Family(StrEnum):
    """Architecture family of a zoo model."""

    CNN = "cnn"
    RECURRENT = "recurrent"


class ModelName(StrEnum):
    """Names of the Keras models in the zoo (the registry's keys)."""

    CNN2_RELU = "cnn2_relu"
    CNN2_LEAKY = "cnn2_leaky"
    CNN3_RELU = "cnn3_relu"
    CNN3_LEAKY = "cnn3_leaky"
    CNN4_RELU = "cnn4_relu"
    CNN4_LEAKY = "cnn4_leaky"
    LSTM_TANH_RELU = "lstm_tanh_relu"
    LSTM_TANH_LEAKY = "lstm_tanh_leaky"
    GRU_TANH_RELU = "gru_tanh_relu"
    GRU_TANH_LEAKY = "gru_tanh_leaky"


#: Names reserved for the report's non-Keras baselines.
BASELINE_NAMES: tuple[str, ...] = ("persistence", "lag", "linear")

#: (past, future, n_features, spec, name, *, residual=None, target=0) -> model
Builder = Callable[..., "keras.Model"]


@dataclass(frozen=True)
class ZooEntry:
    """A registry entry: the family, its builder and the tutorial's default spec."""

    family: Family
    builder: Builder
    default_spec: Spec


_CNN_LAYERS = {2: ((20, 16), (3, 4)), 3: ((8, 8, 8), (3, 2, 2)), 4: ((2, 2, 2, 2), (2, 2, 2, 2))}


def _cnn(layers: int, activation: Activation) -> ZooEntry:
    kernels, strides = _CNN_LAYERS[layers]
    return ZooEntry(Family.CNN, cnn.build, CNNSpec(kernels, strides, activation=activation))


def _rnn(cell: Cell, head: Activation) -> ZooEntry:
    return ZooEntry(Family.RECURRENT, recurrent.build, RecurrentSpec(cell=cell, head=head))


REGISTRY: dict[str, ZooEntry] = {
    ModelName.CNN2_RELU: _cnn(2, Activation.RELU),
    ModelName.CNN2_LEAKY: _cnn(2, Activation.LEAKY),
    ModelName.CNN3_RELU: _cnn(3, Activation.RELU),
    ModelName.CNN3_LEAKY: _cnn(3, Activation.LEAKY),
    ModelName.CNN4_RELU: _cnn(4, Activation.RELU),
    ModelName.CNN4_LEAKY: _cnn(4, Activation.LEAKY),
    ModelName.LSTM_TANH_RELU: _rnn(Cell.LSTM, Activation.RELU),
    ModelName.LSTM_TANH_LEAKY: _rnn(Cell.LSTM, Activation.LEAKY),
    ModelName.GRU_TANH_RELU: _rnn(Cell.GRU, Activation.RELU),
    ModelName.GRU_TANH_LEAKY: _rnn(Cell.GRU, Activation.LEAKY),
}
MODEL_NAMES: tuple[str, ...] = tuple(str(n) for n in REGISTRY)


def entry(name: str) -> ZooEntry:
    """The registry entry for ``name``; an unknown name raises ``ValueError`` listing valid ones."""
    try:
        return REGISTRY[ModelName(name)]
    except ValueError:
        raise ValueError(
            f"unknown model {name!r}; valid models: {', '.join(MODEL_NAMES)}"
        ) from None


def parse_models(text: str) -> list[str]:
    """``"all"`` or a comma list of model names -> validated names in registry order."""
    if text.strip().lower() == "all":
        return list(MODEL_NAMES)
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise ValueError(f"no models given; valid models: all, {', '.join(MODEL_NAMES)}")
    for n in names:
        entry(n)
    return list(dict.fromkeys(names))


def build_model(
    name: str,
    past: int,
    future: int,
    n_features: int,
    spec: Spec | None = None,
    *,
    residual: tuple[float, ...] | None = None,
    target: int = 0,
) -> keras.Model:
    """An uncompiled model for windows (batch, past, n_features); see :func:`output_shape`.

    With ``residual`` (one 0/1 per feature, see :func:`tasks.scaling.residual_mask`) the model
    predicts relative to the last input: its output is ``head(anchor + delta)`` where ``anchor``
    repeats each feature's last input value (0 where the mask is 0) and the layer making
    ``delta`` starts at zero, so an untrained model forecasts persistence exactly. Used with the
    ``window`` scaler, where the last input close is 1.
    """
    e = entry(name)
    spec = e.default_spec if spec is None else spec
    if not isinstance(spec, type(e.default_spec)):
        want = type(e.default_spec).__name__
        raise ValueError(f"{name} needs a {want}, got {type(spec).__name__}")
    if past < 1 or future < 1 or n_features < 1:
        raise ValueError(f"bad window shape past={past} future={future} features={n_features}")
    if residual is not None:
        if len(residual) != n_features:
            raise ValueError(f"residual mask has {len(residual)} values for {n_features} features")
        if not 0 <= target < n_features:
            raise ValueError(f"target feature {target} outside 0..{n_features - 1}")
        return e.builder(past, future, n_features, spec, str(ModelName(name)),
                         residual=tuple(float(v) for v in residual), target=target)
    return e.builder(past, future, n_features, spec, str(ModelName(name)))


def output_shape(name: str, future: int, n_features: int) -> tuple[int, ...]:
    """Per-window prediction shape: (K, F) for CNNs, (K,) for recurrent models."""
    return (future, n_features) if entry(name).family is Family.CNN else (future,)


def model_targets(name: str, outputs: np.ndarray, target_feature: int) -> np.ndarray:
    """Training targets from window outputs (n, K, F): (n, K, F) for CNNs, (n, K) otherwise."""
    if entry(name).family is Family.CNN:
        return outputs
    return outputs[:, :, target_feature]


def target_predictions(name: str, predicted: np.ndarray, target_feature: int) -> np.ndarray:
    """The target feature's predicted horizon (n, K) from a model's raw predictions."""
    if entry(name).family is Family.CNN:
        return predicted[:, :, target_feature]
    return predicted


def compile_model(model: keras.Model, *, jit_compile: bool | str = False,
                  steps_per_execution: int = 1, learning_rate: float = 0.001) -> keras.Model:
    """Compile as the tutorial: Adam on MSE."""
    import keras

    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss="mse",
        jit_compile=jit_compile,
        steps_per_execution=steps_per_execution,
    )
    return model


def spec_to_dict(spec: Spec) -> dict[str, Any]:
    """A JSON-ready dict of a spec (enums as strings, tuples as lists)."""
    return json.loads(json.dumps(dataclasses.asdict(spec), default=str))


def spec_from_dict(name: str, data: dict[str, Any] | None) -> Spec:
    """The spec of model ``name`` from a dict (missing fields take the registry defaults)."""
    default = entry(name).default_spec
    if not data:
        return default
    fields = {f.name for f in dataclasses.fields(default)}
    unknown = set(data) - fields
    if unknown:
        raise ValueError(f"unknown {type(default).__name__} fields for {name}: {sorted(unknown)}")
    values = dict(data)
    for key in ("kernel_sizes", "strides"):
        if key in values:
            values[key] = tuple(values[key])
    if "regularizers" in values:
        values["regularizers"] = tuple(
            r if isinstance(r, Regularizer) else Regularizer(**r) for r in values["regularizers"]
        )
    return dataclasses.replace(default, **values)


__all__ = [
    "BASELINE_NAMES", "MODEL_NAMES", "REGISTRY", "Activation", "CNNSpec", "Cell", "Family",
    "ModelName", "RecurrentSpec", "Regularizer", "Spec", "ZooEntry", "build_model",
    "compile_model", "entry", "model_targets", "output_shape", "parse_models", "spec_from_dict",
    "spec_to_dict", "target_predictions",
]
