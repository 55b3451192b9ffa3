"""The anchor of a residual head: each window's last input value, repeated over the horizon.

Built from stock Keras layers only (``Cropping1D``, a frozen ``Dense``, ``UpSampling1D`` /
``Flatten``), so checkpoints load with ``safe_mode=True`` and no custom objects. The frozen
``Dense`` holds the mask (which features anchor at their last value, which at 0) as weights.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import keras


def last_input(
    window: Any,
    past: int,
    future: int,
    n_features: int,
    mask: tuple[float, ...],
    *,
    per_feature: bool,
) -> keras.KerasTensor:
    """The anchor tensor: (batch, future, n_features) if ``per_feature`` else (batch, future).

    ``mask[f]`` scales feature f's last input value (1: "stays", 0: anchors at 0); for the
    target-only form the masked features are summed (one non-zero entry: the target).
    """
    import keras

    last = keras.layers.Cropping1D((past - 1, 0), name="last_input")(window)  # (b, 1, F)
    m = np.asarray(mask, dtype=np.float32)
    if per_feature:
        select = keras.layers.Dense(n_features, use_bias=False, trainable=False, name="anchor")
        picked = select(last)  # (b, 1, F)
        select.set_weights([np.diag(m)])
        return keras.layers.UpSampling1D(future, name="repeat")(picked)
    flat = keras.layers.Flatten(name="last_value")(last)  # (b, F)
    select = keras.layers.Dense(future, use_bias=False, trainable=False, name="anchor")
    picked = select(flat)  # (b, K)
    select.set_weights([np.repeat(m[:, None], future, axis=1)])
    return picked
