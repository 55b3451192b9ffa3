"""Feature scalers (MinMax, the tutorial's; standard) with stored parameters and an inverse.

The MinMax arithmetic is scikit-learn's, operation for operation (``x * scale + min``), so the
``seed`` protocol reproduces the tutorial's ``MinMaxScaler().fit_transform`` bit for bit.
Parameters are plain float lists, so they round-trip exactly through JSON (``repr`` floats).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

from storage.schema import parse_choice


class ScalerKind(StrEnum):
    """Which scaling the windows use."""

    MINMAX = "minmax"
    STANDARD = "standard"

    @classmethod
    def parse(cls, value: str | ScalerKind) -> ScalerKind:
        """Parse a scaler name, raising a ``ValueError`` that lists the valid ones."""
        return parse_choice(cls, value, "scaler", fold="lower")


def _nonzero(scale: np.ndarray) -> np.ndarray:
    """scikit-learn's ``_handle_zeros_in_scale``: near-constant features get scale 1."""
    scale = np.array(scale, dtype=np.float64, copy=True)
    scale[scale < 10 * np.finfo(np.float64).eps] = 1.0
    return scale


@dataclass(frozen=True)
class Scaler:
    """Per-feature affine scaling ``x * scale + offset`` over the last axis (n_features)."""

    kind: ScalerKind
    params: dict[str, list[float]] = field(default_factory=dict)

    @classmethod
    def fit(cls, rows: np.ndarray, kind: str | ScalerKind = ScalerKind.MINMAX) -> Scaler:
        """Fit on rows (n_rows, n_features); NaN rows are ignored."""
        kind = ScalerKind.parse(kind)
        x = np.asarray(rows, dtype=np.float64)
        if x.ndim != 2 or x.shape[0] == 0:
            raise ValueError(f"scaler needs a non-empty (n_rows, n_features) array, got {x.shape}")
        if kind is ScalerKind.MINMAX:
            data_min = np.nanmin(x, axis=0)
            data_max = np.nanmax(x, axis=0)
            scale = 1.0 / _nonzero(data_max - data_min)
            offset = 0.0 - data_min * scale
            params = {"data_min": data_min, "data_max": data_max, "scale": scale, "min": offset}
        else:
            mean = np.nanmean(x, axis=0)
            std = np.nanstd(x, axis=0)
            params = {"mean": mean, "std": std, "scale_": _nonzero(std)}
        return cls(kind, {k: [float(v) for v in np.atleast_1d(a)] for k, a in params.items()})

    @property
    def n_features(self) -> int:
        """Number of features the scaler was fit on."""
        return len(next(iter(self.params.values())))

    def _pick(self, name: str, feature: int | None) -> np.ndarray:
        values = np.asarray(self.params[name], dtype=np.float64)
        return values if feature is None else values[feature]

    def transform(self, x: np.ndarray, feature: int | None = None) -> np.ndarray:
        """Scale x (..., n_features) to float64; with ``feature``, x is that one feature."""
        x = np.array(x, dtype=np.float64, copy=True)
        if self.kind is ScalerKind.MINMAX:
            x *= self._pick("scale", feature)
            x += self._pick("min", feature)
        else:
            x -= self._pick("mean", feature)
            x /= self._pick("scale_", feature)
        return x

    def inverse_transform(self, x: np.ndarray, feature: int | None = None) -> np.ndarray:
        """Undo ``transform``: x (..., n_features), or one feature of any shape with ``feature``."""
        x = np.array(x, dtype=np.float64, copy=True)
        if self.kind is ScalerKind.MINMAX:
            x -= self._pick("min", feature)
            x /= self._pick("scale", feature)
        else:
            x *= self._pick("scale_", feature)
            x += self._pick("mean", feature)
        return x

    def to_json(self) -> str:
        """JSON text: {"kind": ..., "params": {name: [per-feature floats]}} (exact round trip)."""
        return json.dumps({"kind": self.kind.value, "params": self.params}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Scaler:
        """Parse ``to_json`` output, validating the kind and parameter names."""
        raw = json.loads(text)
        kind = ScalerKind.parse(raw["kind"])
        expected = (
            {"data_min", "data_max", "scale", "min"}
            if kind is ScalerKind.MINMAX
            else {"mean", "std", "scale_"}
        )
        params = raw.get("params", {})
        if set(params) != expected:
            raise ValueError(f"{kind.value} scaler needs parameters {sorted(expected)}")
        return cls(kind, {k: [float(v) for v in params[k]] for k in sorted(expected)})
