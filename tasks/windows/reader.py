"""The window file as models and reports read it: arrays per split plus its scaler.

Under the ``window`` scaler the file holds unscaled rows; :class:`WindowDataset` divides each
window by its last input close (float64, from ``original_*``) as it reads a split, and
:meth:`WindowDataset.split_anchors` gives those closes back so predictions invert to prices.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from storage.windows.reader import WindowFile, corrupt_window_file
from tasks.scaling import Scaler


class WindowDataset(WindowFile):
    """A window file opened for training or reporting: arrays per split, attributes, scaler."""

    @property
    def scaler(self) -> Scaler:
        """The scaler the windows were scaled with (``target_to_price`` gives prices)."""
        cached = self.__dict__.get("_scaler_obj")
        if cached is not None:
            return cached
        try:
            scaler = Scaler.from_json(_json_text(self.attrs["scaler"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise corrupt_window_file(self.path, exc, self.attrs) from exc
        self.__dict__["_scaler_obj"] = scaler
        return scaler

    @property
    def features(self) -> list[str]:
        """Feature column names, in the order of the last axis."""
        return list(self.attrs["features"])

    @property
    def target_feature(self) -> int:
        """Index of the forecast target (``close``) on the feature axis."""
        return int(self.attrs["target_feature"])

    def split_arrays(self, split: str | int) -> tuple[np.ndarray, np.ndarray]:
        """(X (n, N, F), Y (n, K, F)) scaled windows of one split (per window if so scaled)."""
        scaler = self.scaler
        if not scaler.per_window:
            return super().split_arrays(split)
        x_orig, y_orig = self.split_originals(split)
        anchors = self._anchors(scaler, x_orig)
        return scaler.scale_windows(x_orig, anchors), scaler.scale_windows(y_orig, anchors)

    def split_anchors(self, split: str | int) -> np.ndarray | None:
        """Each window's last input close (n,) under the ``window`` scaler, else None."""
        scaler = self.scaler
        if not scaler.per_window:
            return None
        lo, hi = self.split_range(split)
        return self._anchors(scaler, self.read("original_inputs", lo, hi))

    def _anchors(self, scaler: Scaler, original_inputs: np.ndarray) -> np.ndarray:
        try:
            return scaler.window_anchors(original_inputs)
        except ValueError as exc:
            raise corrupt_window_file(self.path, exc, self.attrs) from exc


def _json_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def open_dataset(path: str) -> WindowDataset:
    """Open a window file (either layout) for reading."""
    return WindowDataset(path)
