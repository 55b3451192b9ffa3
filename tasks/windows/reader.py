"""The window file as models and reports read it: arrays per split plus its scaler."""

from __future__ import annotations

import json
from typing import Any

from storage.windows.reader import WindowFile, corrupt_window_file
from tasks.scaling import Scaler


class WindowDataset(WindowFile):
    """A window file opened for training or reporting: arrays per split, attributes, scaler."""

    @property
    def scaler(self) -> Scaler:
        """The scaler the windows were scaled with (``inverse_transform`` gives prices)."""
        try:
            return Scaler.from_json(_json_text(self.attrs["scaler"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise corrupt_window_file(self.path, exc, self.attrs) from exc

    @property
    def features(self) -> list[str]:
        """Feature column names, in the order of the last axis."""
        return list(self.attrs["features"])

    @property
    def target_feature(self) -> int:
        """Index of the forecast target (``close``) on the feature axis."""
        return int(self.attrs["target_feature"])


def _json_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def open_dataset(path: str) -> WindowDataset:
    """Open a window file (either layout) for reading."""
    return WindowDataset(path)
