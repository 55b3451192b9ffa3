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

    @property
    def scores(self) -> Path:
        return self.root / "scores"


def stage_prefixes(
    symbols: list[str] | tuple[str, ...] | str | None = None,
    interval: str | None = None,
    dataset: str | None = None,
    run_id: str | None = None,
) -> list[str]:
    """What a stage reads, relative to the data directory, for ``storage.remote.mirrored``:
    each series' candle folder, the window file ``windows/<dataset>.h5`` (a dataset id), the
    run's folder and its report folder. Unknown or unparsable parts are left out (the stores
    pull what they open anyway)."""
    from storage.candles.partitions import DEFAULT_EXCHANGE, series_dir
    from storage.errors import BadInputError
    from storage.windows.format import SUFFIX

    out: list[str] = []
    names = [symbols] if isinstance(symbols, str) else list(symbols or [])
    for symbol in names if interval else []:
        try:
            out.append(series_dir(Path("candles"), DEFAULT_EXCHANGE, str(symbol),
                                  str(interval)).as_posix())
        except (BadInputError, ValueError):
            continue
    if dataset and all(c in "0123456789abcdef" for c in dataset):
        out.append(f"windows/{dataset}{SUFFIX}")
    if run_id and "/" not in run_id and not run_id.startswith("."):
        out += [f"runs/{run_id}", f"reports/{run_id}"]
    return out


def live_prefixes(symbol: str, interval: str) -> list[str]:
    """What a forecast run of one market reads and rewrites besides its candles, for
    ``storage.remote.mirrored``: the market's forecast and score folders and the champion
    registry. Pulled up front: those stores rewrite whole files, so a file left on the remote
    would otherwise be replaced by one missing its earlier rows."""
    from storage.candles.partitions import DEFAULT_EXCHANGE, series_dir

    out = ["reports/champions.json"]
    for folder in ("forecasts", "scores"):
        out.append(series_dir(Path(folder), DEFAULT_EXCHANGE, symbol, interval).as_posix())
    return out
