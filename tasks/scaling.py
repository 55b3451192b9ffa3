"""Feature scalers (MinMax, the tutorial's; standard; per-window) with stored parameters and an
inverse.

``minmax`` and ``standard`` are affine per feature, fit on rows. ``window`` is scale-free: each
window's quote-currency features (open, high, low, close, volume_quote) are divided by that
window's last input close, the others (volume_base, trade_count, log_return) are kept; the rows
are stored unscaled and the division happens when windows are read (:meth:`Scaler.scale_windows`).

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
    WINDOW = "window"

    @classmethod
    def parse(cls, value: str | ScalerKind) -> ScalerKind:
        """Parse a scaler name, raising a ``ValueError`` that lists the valid ones."""
        return parse_choice(cls, value, "scaler", fold="lower")


def _nonzero(scale: np.ndarray) -> np.ndarray:
    """scikit-learn's ``_handle_zeros_in_scale``: near-constant features get scale 1."""
    scale = np.array(scale, dtype=np.float64, copy=True)
    scale[scale < 10 * np.finfo(np.float64).eps] = 1.0
    return scale


#: Features divided by the window's last input close under the ``window`` scaler (prices and
#: amounts in the quote currency); the others are already scale-free.
QUOTE_FEATURES: frozenset[str] = frozenset({"open", "high", "low", "close", "volume_quote"})
#: Features whose "nothing changes" value is 0 rather than their last value (residual heads).
ZERO_ANCHOR_FEATURES: frozenset[str] = frozenset({"log_return"})


def window_params(features: list[str] | tuple[str, ...]) -> dict[str, list[float]]:
    """Parameters of a ``window`` scaler for ``features``: which are divided, by which column."""
    names = [str(f) for f in features]
    if "close" not in names:
        raise ValueError(
            "scaler window divides each window by its last input close: add close to features"
        )
    return {
        "anchor": [float(names.index("close"))],
        "divide": [1.0 if n in QUOTE_FEATURES else 0.0 for n in names],
    }


def residual_mask(features: list[str] | tuple[str, ...]) -> tuple[float, ...]:
    """Per feature, 1 where "the value stays" is the last input value, 0 where it is 0."""
    return tuple(0.0 if str(f) in ZERO_ANCHOR_FEATURES else 1.0 for f in features)


@dataclass(frozen=True)
class Scaler:
    """Per-feature affine scaling ``x * scale + offset`` over the last axis (n_features)."""

    kind: ScalerKind
    params: dict[str, list[float]] = field(default_factory=dict)

    @classmethod
    def fit(cls, rows: np.ndarray, kind: str | ScalerKind = ScalerKind.MINMAX) -> Scaler:
        """Fit on rows (n_rows, n_features); NaN rows are ignored."""
        kind = ScalerKind.parse(kind)
        if kind is ScalerKind.WINDOW:
            raise ValueError("a window scaler is not fit on rows; use Scaler.for_windows")
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

    @classmethod
    def for_windows(cls, features: list[str] | tuple[str, ...]) -> Scaler:
        """The ``window`` scaler of ``features`` (nothing to fit; see the module doc)."""
        return cls(ScalerKind.WINDOW, window_params(features))

    @property
    def per_window(self) -> bool:
        """True when each window is scaled by its own anchor (rows are stored unscaled)."""
        return self.kind is ScalerKind.WINDOW

    @property
    def n_features(self) -> int:
        """Number of features the scaler was fit on."""
        key = "divide" if self.per_window else next(iter(self.params))
        return len(self.params[key])

    @property
    def anchor_feature(self) -> int:
        """The column whose last input value scales a window (``window`` only)."""
        return int(self.params["anchor"][0])

    def window_anchors(self, original_inputs: np.ndarray) -> np.ndarray:
        """Each window's last input close (n,) float64, from unscaled inputs (n, N, F)."""
        x = np.asarray(original_inputs, dtype=np.float64)
        anchors = x[:, -1, self.anchor_feature]
        if anchors.size and not np.all(np.isfinite(anchors) & (anchors > 0)):
            raise ValueError("a window's last input close is not a positive price")
        return anchors

    def scale_windows(self, original: np.ndarray, anchors: np.ndarray) -> np.ndarray:
        """Unscaled windows (n, L, F) divided per window (quote features only) -> float64."""
        x = np.array(original, dtype=np.float64, copy=True)
        divide = np.asarray(self.params["divide"], dtype=bool)
        x[:, :, divide] /= np.asarray(anchors, dtype=np.float64)[:, None, None]
        return x

    def target_to_price(
        self, values: np.ndarray, target: int, anchors: np.ndarray | None = None
    ) -> np.ndarray:
        """Scaled values of the target feature, any shape (n, ...), back in price units.

        ``anchors`` (n,) are the windows' last input closes; the ``window`` scaler needs them.
        """
        arr = np.asarray(values, dtype=np.float64)
        if not self.per_window:
            return self.inverse_transform(arr, feature=target)
        if not self.params["divide"][target]:
            return arr.copy()
        if anchors is None:
            raise ValueError("the window scaler needs each window's anchor to invert")
        a = np.asarray(anchors, dtype=np.float64)
        return arr * a.reshape(a.shape + (1,) * (arr.ndim - a.ndim))

    def _pick(self, name: str, feature: int | None) -> np.ndarray:
        values = np.asarray(self.params[name], dtype=np.float64)
        return values if feature is None else values[feature]

    def transform(self, x: np.ndarray, feature: int | None = None) -> np.ndarray:
        """Scale x (..., n_features) to float64; with ``feature``, x is that one feature."""
        x = np.array(x, dtype=np.float64, copy=True)
        if self.per_window:  # rows stay unscaled; windows are divided when read
            return x
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
        if self.per_window:
            return x
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
        expected = {
            ScalerKind.MINMAX: {"data_min", "data_max", "scale", "min"},
            ScalerKind.STANDARD: {"mean", "std", "scale_"},
            ScalerKind.WINDOW: {"anchor", "divide"},
        }[kind]
        params = raw.get("params", {})
        if set(params) != expected:
            raise ValueError(f"{kind.value} scaler needs parameters {sorted(expected)}")
        return cls(kind, {k: [float(v) for v in params[k]] for k in sorted(expected)})
