"""Where each store lives under the data directory (see docs/ARCHITECTURE.md)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


def resolve_data_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """The data directory: the argument, else ``$CRYPTOFLOW_DATA_DIR``, else ``./data``."""
    from storage.settings import settings

    raw = data_dir if data_dir not in (None, "") else settings().data_dir
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
