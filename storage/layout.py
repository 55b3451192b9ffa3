"""Where each store lives under the data directory (see docs/ARCHITECTURE.md)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_DATA_DIR = "./data"
DATA_DIR_ENV = "CRYPTOFLOW_DATA_DIR"


def resolve_data_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """The data directory: the argument, else ``$CRYPTOFLOW_DATA_DIR``, else ``./data``."""
    raw = data_dir if data_dir not in (None, "") else os.environ.get(DATA_DIR_ENV, DEFAULT_DATA_DIR)
    return Path(raw).expanduser().resolve()


@dataclass(frozen=True)
class DataLayout:
    """The four stores under one data directory."""

    root: Path

    @classmethod
    def at(cls, data_dir: str | os.PathLike[str] | None = None) -> DataLayout:
        return cls(resolve_data_dir(data_dir))

    @property
    def candles(self) -> Path:
        return self.root / "candles"

    @property
    def windows(self) -> Path:
        return self.root / "windows"

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    @property
    def reports(self) -> Path:
        return self.root / "reports"
