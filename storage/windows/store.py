"""The window store: the ``windows/`` folder, one ``<dataset-id>.h5`` per (candles, spec)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from storage.atomic import TEMP_SUFFIX, remove_stale_temporaries
from storage.errors import BadInputError, CorruptStoreError
from storage.remote import sync_scope
from storage.runs import validate_name
from storage.schema import Interval, validate_symbol
from storage.windows.format import SUFFIX, rebuild_command, window_path
from storage.windows.reader import check_window_file, read_attrs

#: A window file that cannot be opened is renamed ``<id>.h5`` + this + a UTC time.
CORRUPT_MARK = ".corrupt-"

#: Attributes a summary carries (text, except the window shape).
SUMMARY_ATTRS = ("dataset_id", "protocol", "symbol", "interval", "past", "future")


@dataclass
class WindowRepairs:
    """What :meth:`WindowStore.tidy` did, and the window files left intact."""

    removed: list[str] = field(default_factory=list)  # temporaries of writers that are gone
    moved: list[dict[str, str]] = field(default_factory=list)  # path, moved_to, problem
    #: Files that could not be checked for a reason outside them (locked by a writer, no
    #: permission, out of file handles): left where they are, neither intact nor moved.
    unchecked: list[dict[str, str]] = field(default_factory=list)  # path, problem
    intact: list[str] = field(default_factory=list)  # dataset ids whose file opens


class WindowStore:
    """Finds, names and summarises the window files under ``root`` (``DataLayout.windows``)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def path(self, ds_id: str) -> Path:
        """``root/<dataset-id>.h5`` (``BadInputError`` for an id that is not plain hex)."""
        return window_path(self.root, ds_id)

    def has(self, ds_id: str) -> bool:
        """Whether the window file of ``ds_id`` is there."""
        return self.path(ds_id).is_file()

    def tidy(self) -> WindowRepairs:
        """Remove the temporaries of writers that are gone (never a live writer's) and move
        every window file that cannot be opened aside (``<id>.h5.corrupt-<time>``); a file
        that fails for a reason outside it (an OS error: locked, no permission) stays."""
        removed = remove_stale_temporaries(self.root, suffix=SUFFIX + TEMP_SUFFIX)
        repairs = WindowRepairs(removed=[str(p) for p in removed])
        for path in sorted(self.root.glob(f"*{SUFFIX}")) if self.root.is_dir() else []:
            try:
                inode = path.stat().st_ino
                check_window_file(path)
            except FileNotFoundError:
                continue  # moved by a concurrent tidy
            except CorruptStoreError as exc:
                cause = exc.__cause__
                if isinstance(cause, OSError) and cause.errno is not None:
                    repairs.unchecked.append({"path": str(path), "problem": exc.problem})
                    continue
                try:
                    moved_to = self.move_aside(path, inode)
                except OSError as err:  # e.g. a read-only folder: say so, in one line
                    raise CorruptStoreError(
                        path, f"{exc.problem}; moving it aside failed ({err})",
                        rebuild=f"mv {path} {path}{CORRUPT_MARK}manual && {exc.rebuild}",
                    ) from None
                if moved_to is not None:
                    repairs.moved.append(
                        {"path": str(path), "moved_to": str(moved_to), "problem": exc.problem}
                    )
                    continue
            repairs.intact.append(path.stem)
        return repairs

    def move_aside(self, path: Path, inode: int | None = None) -> Path | None:
        """Rename ``path`` to ``<name>.corrupt-<UTC time>``; None when it is gone, or no longer
        the file of ``inode`` (a writer put a new one there meanwhile)."""
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        target = path.with_name(f"{path.name}{CORRUPT_MARK}{stamp}")
        n = 1
        while target.exists():
            target = path.with_name(f"{path.name}{CORRUPT_MARK}{stamp}-{n}")
            n += 1
        try:
            if inode is not None and path.stat().st_ino != inode:
                return None
            os.rename(path, target)
        except FileNotFoundError:
            return None
        return target

    def locate(self, dataset: str | None, symbol: str | None, interval: str | None) -> Path:
        """The window file: a path, an id under ``windows/``, else the newest for symbol/interval.

        ``BadInputError`` for a named file or id that is not there, or neither given.
        """
        if dataset:
            candidate = Path(dataset)
            sync_scope(candidate)
            if candidate.suffix == SUFFIX or "/" in dataset or candidate.is_file():
                if not candidate.is_file():
                    raise BadInputError(f"window file not found: {candidate}")
                return candidate.resolve()
            path = self.root / f"{validate_name(dataset, 'dataset id')}{SUFFIX}"
            sync_scope(path)
            if not path.is_file():
                raise BadInputError(f"no window file with id {dataset!r} under {self.root}")
            return path.resolve()
        if not symbol or not interval:
            raise BadInputError(
                "give --dataset, or --symbol and --interval to use their newest windows"
            )
        return self.newest(validate_symbol(symbol), Interval.parse(interval).value)

    def newest(self, symbol: str, interval: str) -> Path:
        """The most recently written window file of (symbol, interval).

        ``BadInputError`` when there is none; ``CorruptStoreError`` for a file under ``root``
        that cannot be read or does not name its market (its rebuild: ``prepare`` of this
        market, which moves every unreadable window file aside).
        """
        found: list[tuple[float, Path]] = []
        sync_scope(self.root)  # a remote data dir: every window file (no id to narrow it)
        for path in sorted(self.root.glob(f"*{SUFFIX}")) if self.root.is_dir() else []:
            try:
                attrs = read_attrs(path)
            except CorruptStoreError as exc:  # `prepare` of this market moves it aside
                raise CorruptStoreError(
                    path, exc.problem, rebuild=rebuild_command(symbol, interval)
                ) from None
            if "symbol" not in attrs or "interval" not in attrs:
                raise CorruptStoreError(
                    path,
                    "not a window file: no symbol/interval attributes",
                    rebuild=rebuild_command(symbol, interval),
                )
            if str(attrs["symbol"]) == symbol and str(attrs["interval"]) == interval:
                found.append((path.stat().st_mtime, path))
        if not found:
            raise BadInputError(
                f"no window file for {symbol} {interval} under {self.root}; "
                "run `cryptoflow prepare`"
            )
        return max(found)[1].resolve()

    def summary(self, path: str | os.PathLike[str]) -> dict[str, Any]:
        """Protocol, market and window shape of a window file (from its attributes)."""
        path = Path(path)
        attrs = read_attrs(path)
        out: dict[str, Any] = {k: str(attrs[k]) for k in SUMMARY_ATTRS if k in attrs}
        try:
            for k in ("past", "future"):
                if k in out:
                    out[k] = int(out[k])
        except ValueError as exc:
            raise CorruptStoreError(
                path,
                f"bad window shape attribute ({exc})",
                rebuild=rebuild_command(attrs.get("symbol"), attrs.get("interval")),
            ) from None
        out.setdefault("dataset_id", path.stem)
        return out
