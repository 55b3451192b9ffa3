"""Where each store lives under the data directory (see docs/ARCHITECTURE.md)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


def resolve_data_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """The local data directory: the argument, else ``$CRYPTOFLOW_DATA_DIR``, else ``./data``
    (a ``file://`` URL is its folder; another URL is refused: it needs the mirror)."""
    from storage.errors import BadInputError
    from storage.settings import settings

    raw = os.fspath(data_dir) if data_dir not in (None, "") else settings().data_dir
    if raw.lower().startswith("file://"):
        from storage.remote import local_data_dir

        raw = local_data_dir(raw)
    elif "://" in raw:
        # A remote data dir is worked on through a local mirror (storage.remote.mirrored), which
        # the CLI and the pipeline flow set up; a stage given the URL itself must not write to
        # a local folder named "s3:".
        raise BadInputError(
            f"data_dir: {raw!r} is a URL; run this stage through `cryptoflow` or the pipeline "
            "flow, which mirror a remote data directory, or give a local folder"
        )
    return Path(raw).expanduser().resolve()


@dataclass(frozen=True)
class DataLayout:
    """The stores under one data directory."""

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

    @property
    def forecasts(self) -> Path:
        return self.root / "forecasts"
