"""The arrays one training reads from a window file, and each epoch's window order."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from storage.errors import BadInputError


@dataclass(frozen=True)
class TrainingArrays:
    """Train/validation windows: x (n, N, F) float32; y (n, K, F) or (n, K) per model family."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    past: int
    future: int
    n_features: int
    target_feature: int
    dataset_id: str
    residual: tuple[float, ...] | None = None  # residual-head mask (window scaler), else None


def read_training_arrays(dataset_path: Path, model: str) -> TrainingArrays:
    """Train and validation arrays of a window file, shaped for ``model``'s outputs."""
    from tasks.scaling import residual_mask
    from tasks.windows import open_dataset
    from tasks.zoo import model_targets

    with open_dataset(str(dataset_path)) as ds:
        x_train, y_train = ds.split_arrays("train")
        x_val, y_val = ds.split_arrays("validation")
        attrs = dict(ds.attrs)
        residual = residual_mask(ds.features) if ds.scaler.per_window else None
    if len(x_train) == 0 or len(x_val) == 0:
        raise BadInputError(
            f"{dataset_path} has {len(x_train)} training and {len(x_val)} validation windows; "
            "training needs both"
        )
    target = int(attrs.get("target_feature", 0))
    return TrainingArrays(
        x_train=np.ascontiguousarray(x_train, dtype=np.float32),
        y_train=np.ascontiguousarray(model_targets(model, y_train, target), dtype=np.float32),
        x_val=np.ascontiguousarray(x_val, dtype=np.float32),
        y_val=np.ascontiguousarray(model_targets(model, y_val, target), dtype=np.float32),
        past=int(x_train.shape[1]),
        future=int(y_train.shape[1]),
        n_features=int(x_train.shape[2]),
        target_feature=target,
        dataset_id=str(attrs.get("dataset_id", Path(dataset_path).stem)),
        residual=residual,
    )


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """The shuffled window order (n,) of one epoch, fixed by (seed, epoch)."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, int(epoch)]).permutation(n)
