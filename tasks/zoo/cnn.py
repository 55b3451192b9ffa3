"""1D CNN forecasters (the tutorial's CNN-2, CNN-3 and CNN-4): windows (N, F) -> horizon (K, F).

Each convolution is ``Conv1D`` with ``padding="valid"``, so its output length is
``(length - kernel) // stride + 1``. The tutorial's listings reach K=16 from N=256; for other
(N, K) the builder derives the last convolution's kernel (and, if needed, its stride) so the
output has exactly K steps. With N=256, K=16 the derived layers are the tutorial's own.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import keras


class Activation(StrEnum):
    """Hidden-layer activation of a zoo model."""

    RELU = "relu"
    LEAKY = "leaky"


@dataclass(frozen=True)
class CNNSpec:
    """Hyperparameters of a 1D CNN (stored unchanged in ``spec.json``).

    ``kernel_sizes``/``strides`` list every convolution, the last one mapping to the F outputs;
    hidden convolutions have ``filters`` channels, each followed by ``dropout``.
    """

    kernel_sizes: tuple[int, ...] = (20, 16)
    strides: tuple[int, ...] = (3, 4)
    filters: int = 8
    activation: Activation = Activation.RELU
    dropout: float = 0.5
    leaky_slope: float = 0.3  # Keras' LeakyReLU default, as in the tutorial

    def __post_init__(self) -> None:
        if len(self.kernel_sizes) != len(self.strides) or len(self.kernel_sizes) < 2:
            raise ValueError("a CNN needs matching kernel_sizes and strides, at least 2 layers")
        if min(self.kernel_sizes) < 1 or min(self.strides) < 1 or self.filters < 1:
            raise ValueError("kernel sizes, strides and filters must be positive")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        object.__setattr__(self, "activation", Activation(self.activation))
        object.__setattr__(self, "kernel_sizes", tuple(int(k) for k in self.kernel_sizes))
        object.__setattr__(self, "strides", tuple(int(s) for s in self.strides))


def conv_length(length: int, kernel: int, stride: int) -> int:
    """Output steps of a 'valid' 1D convolution over ``length`` steps."""
    return (length - kernel) // stride + 1 if length >= kernel else 0


def conv_plan(past: int, future: int, spec: CNNSpec) -> list[tuple[int, int, int]]:
    """(kernel, stride, output length) of every convolution, the last one ending at ``future``.

    Raises ``ValueError`` when ``past`` is too short for the hidden layers to leave ``future``
    steps.
    """
    plan: list[tuple[int, int, int]] = []
    length = past
    for kernel, stride in zip(spec.kernel_sizes[:-1], spec.strides[:-1], strict=True):
        length = conv_length(length, kernel, stride)
        plan.append((kernel, stride, length))
    kernel, stride = spec.kernel_sizes[-1], spec.strides[-1]
    if conv_length(length, kernel, stride) != future:
        kernel, stride = _fit_last(length, future, stride)
    plan.append((kernel, stride, future))
    return plan


def _fit_last(length: int, future: int, stride: int) -> tuple[int, int]:
    """Kernel and stride of a final convolution that maps ``length`` steps to ``future``."""
    if future < 1 or length < future:
        raise ValueError(
            f"the CNN's hidden layers leave {length} steps, fewer than the horizon K={future}; "
            "use longer windows (larger N) or a smaller K"
        )
    if future == 1:
        return length, 1
    stride = min(stride, (length - 1) // (future - 1))
    return length - stride * (future - 1), stride


def build(
    past: int,
    future: int,
    n_features: int,
    spec: CNNSpec,
    name: str,
    *,
    residual: tuple[float, ...] | None = None,
    target: int = 0,
) -> keras.Model:
    """A CNN mapping windows (batch, past, n_features) to (batch, future, n_features).

    With ``residual`` the last convolution starts at zero and is added to the last input
    (see :func:`tasks.zoo.build_model`); ``target`` is unused (a CNN predicts every feature).
    """
    import keras

    plan = conv_plan(past, future, spec)
    window = keras.Input(shape=(past, n_features), name="window")
    layers: list[keras.layers.Layer] = [window]
    for i, (kernel, stride, _) in enumerate(plan[:-1], start=1):
        relu = spec.activation is Activation.RELU
        layers.append(
            keras.layers.Conv1D(
                spec.filters, kernel, strides=stride, activation="relu" if relu else None,
                name=f"conv{i}",
            )
        )
        if not relu:
            layers.append(keras.layers.LeakyReLU(negative_slope=spec.leaky_slope, name=f"leaky{i}"))
        layers.append(keras.layers.Dropout(spec.dropout, name=f"dropout{i}"))
    kernel, stride, _ = plan[-1]
    if residual is None:
        layers.append(
            keras.layers.Conv1D(n_features, kernel, strides=stride, name=f"conv{len(plan)}")
        )
        return keras.Sequential(layers, name=name)
    hidden = window
    for layer in layers[1:]:
        hidden = layer(hidden)
    delta = keras.layers.Conv1D(
        n_features, kernel, strides=stride, kernel_initializer="zeros", bias_initializer="zeros",
        name=f"conv{len(plan)}",
    )(hidden)
    from tasks.zoo.residual import last_input

    anchor = last_input(window, past, future, n_features, residual, per_feature=True)
    out = keras.layers.Add(name="residual")([delta, anchor])
    return keras.Model(window, out, name=name)
