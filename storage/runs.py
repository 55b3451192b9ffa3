"""The run store: one folder per training run, one sub-folder per model (see docs/INTERFACES.md).

```
runs/<run-id>/run.json                # dataset_id, dataset_path, protocol, models, created, ...
runs/<run-id>/<model>/spec.json       # model, family, spec, epochs, batch_size, seed, dataset_id
runs/<run-id>/<model>/history.csv     # epoch (from 1), loss, val_loss, seconds
runs/<run-id>/<model>/checkpoints/epoch-003-0.000123.keras
runs/<run-id>/<model>/result.json     # written when training completes (metrics dict)
```

Every file is written atomically. ``history.csv`` is the commit record of training: an epoch
exists once its row is there, and its checkpoint is written *before* the row, so after a crash
at any point the recorded epochs all have their checkpoints. Checkpoints of unrecorded epochs
are leftovers of a crash; :meth:`ModelDir.discard_unrecorded` removes them before a resume.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import json
import math
import os
import re
import secrets
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from storage.atomic import atomic_write_text
from storage.errors import BadInputError, CorruptStoreError
from storage.remote import sync_records, sync_scope

#: Columns a history must have (the ones selection reads); ``seconds`` is optional on read.
REQUIRED_HISTORY_COLUMNS: tuple[str, ...] = ("epoch", "loss", "val_loss")
HISTORY_COLUMNS: tuple[str, ...] = (*REQUIRED_HISTORY_COLUMNS, "seconds")
#: How a corrupt run store file is rebuilt (training resumes or restarts the model).
REBUILD_RUN = "cryptoflow train --run-id <run-id>"
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_CHECKPOINT_RE = re.compile(r"^epoch-(?P<epoch>\d{3,})-(?P<val_loss>[^/]+)\.keras$")
_PARTIAL_MARK = ".partial-"
#: The lock file of a run folder (held by the flow run that trains into it).
LOCK_FILE = ".lock"


class RunBusyError(BadInputError):
    """Another flow run is training into this run folder (refused at once, nothing written)."""


def validate_name(value: str, what: str = "run id") -> str:
    """Return ``value`` if it is a safe single path component (letters, digits, ``_.-``)."""
    if not isinstance(value, str) or not _ID_RE.fullmatch(value) or value in (".", ".."):
        raise BadInputError(
            f"invalid {what} {value!r}: use letters, digits, '_', '.', '-' (at most 128)"
        )
    return value


def new_run_id(now: datetime | None = None) -> str:
    """A sortable, unique run id such as ``20260127T031500Z-3fa2c1``."""
    now = now or datetime.now(UTC)
    return f"{now.strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(3)}"


def checkpoint_name(epoch: int, val_loss: float) -> str:
    """The checkpoint file name of an epoch, e.g. ``epoch-003-0.000123.keras``."""
    return f"epoch-{epoch:03d}-{val_loss:.6f}.keras"


def parse_checkpoint_name(name: str) -> int | None:
    """The epoch of a checkpoint file name, or None when the name is not a checkpoint's."""
    m = _CHECKPOINT_RE.match(name)
    return int(m.group("epoch")) if m else None


def scan_checkpoints(checkpoint_dir: Path) -> dict[int, Path]:
    """Epoch -> checkpoint file in ``checkpoint_dir``, by file name (never by file time)."""
    found: dict[int, Path] = {}
    if not checkpoint_dir.is_dir():
        return found
    for path in sorted(checkpoint_dir.iterdir()):
        epoch = parse_checkpoint_name(path.name)
        if epoch is not None and path.is_file():
            if epoch in found:
                raise CorruptStoreError(
                    checkpoint_dir, f"two checkpoints for epoch {epoch}: {found[epoch]}, {path}"
                )
            found[epoch] = path
    return found


def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorruptStoreError(path, f"unreadable JSON: {exc}", rebuild=REBUILD_RUN) from None
    if not isinstance(data, dict):
        raise CorruptStoreError(path, "expected a JSON object", rebuild=REBUILD_RUN)
    return data


def _write_json(path: Path, data: Mapping[str, Any]) -> Path:
    return atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def empty_history() -> pd.DataFrame:
    """A typed, empty history table."""
    return pd.DataFrame(
        {
            "epoch": pd.Series([], dtype="int64"),
            "loss": pd.Series([], dtype="float64"),
            "val_loss": pd.Series([], dtype="float64"),
            "seconds": pd.Series([], dtype="float64"),
        }
    )


def _format_float(x: float) -> str:
    return repr(float(x)) if math.isfinite(x) else str(float(x))


@dataclass(frozen=True)
class ModelDir:
    """The folder of one model in one run: spec, history, checkpoints, result."""

    path: Path

    @property
    def spec_path(self) -> Path:
        return self.path / "spec.json"

    @property
    def history_path(self) -> Path:
        return self.path / "history.csv"

    @property
    def checkpoint_dir(self) -> Path:
        return self.path / "checkpoints"

    @property
    def result_path(self) -> Path:
        return self.path / "result.json"

    def read_spec(self) -> dict[str, Any] | None:
        """The stored ``spec.json``, or None before training started."""
        return _read_json(self.spec_path)

    def write_spec(self, spec: Mapping[str, Any]) -> Path:
        """Write ``spec.json`` atomically."""
        return _write_json(self.spec_path, spec)

    def read_result(self) -> dict[str, Any] | None:
        """The stored ``result.json``, or None while training is unfinished."""
        return _read_json(self.result_path)

    def write_result(self, result: Mapping[str, Any]) -> Path:
        """Write ``result.json`` atomically (marks training complete)."""
        return _write_json(self.result_path, result)

    def clear_result(self) -> None:
        """Remove ``result.json`` (training is about to continue)."""
        with contextlib.suppress(FileNotFoundError):
            self.result_path.unlink()

    def read_history(self) -> pd.DataFrame:
        """History (epochs, [epoch, loss, val_loss, seconds]) sorted by epoch; empty when none."""
        path = self.history_path
        if not path.is_file():
            return empty_history()
        try:
            df = pd.read_csv(path)
        except (OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
            raise CorruptStoreError(path, f"unreadable CSV: {exc}", rebuild=REBUILD_RUN) from None
        except pd.errors.EmptyDataError:
            raise CorruptStoreError(path, "empty file", rebuild=REBUILD_RUN) from None
        missing = [c for c in REQUIRED_HISTORY_COLUMNS if c not in df.columns]
        if missing:
            raise CorruptStoreError(path, f"lacks columns {missing}", rebuild=REBUILD_RUN)
        if "seconds" not in df.columns:
            df["seconds"] = float("nan")
        try:
            df = df.loc[:, list(HISTORY_COLUMNS)].astype(
                {"epoch": "int64", "loss": "float64", "val_loss": "float64", "seconds": "float64"}
            )
        except (TypeError, ValueError) as exc:
            raise CorruptStoreError(path, f"bad values: {exc}", rebuild=REBUILD_RUN) from None
        if df["epoch"].duplicated().any():
            raise CorruptStoreError(path, "records an epoch twice", rebuild=REBUILD_RUN)
        return df.sort_values("epoch", ignore_index=True)

    def append_history(self, epoch: int, loss: float, val_loss: float, seconds: float) -> Path:
        """Record one epoch (rewrites the small CSV atomically); epochs must follow on from 1."""
        history = self.read_history()
        expected = int(history["epoch"].iloc[-1]) + 1 if len(history) else 1
        if epoch != expected:
            raise BadInputError(f"epoch {epoch} cannot follow the history (next is {expected})")
        row = pd.DataFrame(
            {"epoch": [int(epoch)], "loss": [float(loss)], "val_loss": [float(val_loss)],
             "seconds": [float(seconds)]}
        )
        return self._write_history(pd.concat([history, row], ignore_index=True))

    def truncate_history(self, last_epoch: int) -> None:
        """Drop recorded epochs after ``last_epoch`` (used when a checkpoint is missing)."""
        history = self.read_history()
        self._write_history(history[history["epoch"] <= last_epoch])

    def _write_history(self, history: pd.DataFrame) -> Path:
        """Write the history CSV atomically with exact (repr) floats."""
        buf = io.StringIO()
        buf.write(",".join(HISTORY_COLUMNS) + "\n")
        for row in history.itertuples(index=False):
            buf.write(
                f"{int(row.epoch)},{_format_float(row.loss)},{_format_float(row.val_loss)},"
                f"{_format_float(row.seconds)}\n"
            )
        return atomic_write_text(self.history_path, buf.getvalue())

    def checkpoint_files(self) -> dict[int, Path]:
        """Epoch -> checkpoint file on disk (by name, never by file time)."""
        return scan_checkpoints(self.checkpoint_dir)

    def checkpoints(self) -> dict[int, Path]:
        """Epoch -> checkpoint of every *recorded* epoch (those in ``history.csv``)."""
        recorded = set(self.read_history()["epoch"].tolist())
        return {e: p for e, p in self.checkpoint_files().items() if e in recorded}

    def partial_path(self, final: Path) -> Path:
        """A hidden temporary name beside ``final`` that still ends in ``.keras``."""
        return final.with_name(f".{final.stem}{_PARTIAL_MARK}{os.getpid()}.keras")

    def discard_unrecorded(self) -> list[Path]:
        """Delete temporary files and checkpoints of epochs missing from the history."""
        removed: list[Path] = []
        if not self.checkpoint_dir.is_dir():
            return removed
        recorded = set(self.read_history()["epoch"].tolist())
        for path in self.checkpoint_dir.iterdir():
            epoch = parse_checkpoint_name(path.name)
            stale = path.name.startswith(".") and (
                _PARTIAL_MARK in path.name or path.name.endswith(".tmp")
            )
            if stale or (epoch is not None and epoch not in recorded):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                removed.append(path)
        return removed


class RunStore:
    """All training runs under one root (``DataLayout.runs``)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def run_dir(self, run_id: str) -> Path:
        """The folder of one run."""
        return self.root / validate_name(run_id, "run id")

    def model_dir(self, run_id: str, model: str) -> Path:
        """The folder of one model in one run (pulled first under a remote data dir's mirror)."""
        path = self.run_dir(run_id) / validate_name(model, "model name")
        sync_scope(path)
        return path

    def synced_run_dir(self, run_id: str) -> Path:
        """The folder of one run, pulled first (once) under a remote data directory's mirror."""
        path = self.run_dir(run_id)
        sync_scope(path)
        return path

    def model(self, run_id: str, model: str) -> ModelDir:
        """The :class:`ModelDir` of one model in one run."""
        return ModelDir(self.model_dir(run_id, model))

    def read_run(self, run_id: str) -> dict[str, Any] | None:
        """The run's ``run.json``, or None when absent."""
        path = self.run_dir(run_id) / "run.json"
        sync_scope(path)
        return _read_json(path)

    def write_run(self, run_id: str, info: Mapping[str, Any]) -> Path:
        """Write ``run.json`` atomically (adds ``created`` when missing)."""
        data = dict(info)
        data.setdefault("created", datetime.now(UTC).isoformat())
        data["run_id"] = run_id
        return _write_json(self.run_dir(run_id) / "run.json", data)

    def read_history(self, run_id: str, model: str) -> pd.DataFrame:
        """History (epochs, [epoch, loss, val_loss, seconds]); empty when none."""
        return self.model(run_id, model).read_history()

    def checkpoints(self, run_id: str, model: str) -> dict[int, Path]:
        """Epoch -> checkpoint path of every recorded epoch."""
        return self.model(run_id, model).checkpoints()

    def read_spec(self, run_id: str, model: str) -> dict[str, Any] | None:
        return self.model(run_id, model).read_spec()

    def read_result(self, run_id: str, model: str) -> dict[str, Any] | None:
        return self.model(run_id, model).read_result()

    def models(self, run_id: str) -> list[str]:
        """Models with a ``spec.json`` in the run, sorted by name."""
        d = self.synced_run_dir(run_id)
        if not d.is_dir():
            return []
        return sorted(p.parent.name for p in d.glob("*/spec.json"))

    def sweep_tables(self, run_id: str) -> list[tuple[str, Path]]:
        """(run id, CSV) of the tables a report may draw a sweep from, in order of preference:
        the run's own (``runs/<run-id>/*.csv``, ``sweep*/*.csv``), then the ``sweep*.csv`` of
        other runs made on the same window file (same ``dataset_id`` in ``run.json``), newest
        first. A sweep on another market or window file is never offered."""
        run_dir = self.synced_run_dir(run_id)
        own = sorted([*run_dir.glob("*.csv"), *run_dir.glob("sweep*/*.csv")])
        found = [(run_id, p) for p in own]
        dataset_id = (self.read_run(run_id) or {}).get("dataset_id")
        if not dataset_id:
            return found
        for other in reversed(self.runs()):
            if other != run_id and (self.read_run(other) or {}).get("dataset_id") == dataset_id:
                other_dir = self.synced_run_dir(other)
                found += [(other, p) for p in sorted(other_dir.glob("sweep*.csv"))]
        return found

    @contextlib.contextmanager
    def lock(self, run_id: str) -> Iterator[Path]:
        """Hold the run folder's exclusive lock (``flock`` on ``<run>/.lock``, released when the
        holder exits or dies); :class:`RunBusyError` at once when another holds it."""
        path = self.synced_run_dir(run_id) / LOCK_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise RunBusyError(
                    f"run {run_id!r} is being trained by another flow run (lock {path}); "
                    "wait for it to finish or use another run id"
                ) from None
            yield path
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    def started(self, run_id: str) -> bool:
        """Whether the run has produced anything to report: a recorded epoch (a history row),
        a ``result.json`` or a sweep table."""
        d = self.synced_run_dir(run_id)
        if (d / "sweep.csv").is_file() or any(d.glob("*/result.json")):
            return True
        for history in d.glob("*/history.csv"):
            with contextlib.suppress(OSError), history.open("rb") as fh:
                fh.readline()  # the header
                if fh.readline().strip():
                    return True
        return False

    def runs(self) -> list[str]:
        """Run ids with a ``run.json``, oldest first (by the recorded ``created`` time); under a
        remote data directory's mirror, the records missing from the cache are pulled first
        (records only, no checkpoint)."""
        sync_records(self.root, "run.json")
        if not self.root.is_dir():
            return []
        found = []
        for p in self.root.glob("*/run.json"):
            info = _read_json(p) or {}
            found.append((str(info.get("created", "")), p.parent.name))
        return [run_id for _, run_id in sorted(found)]

    def latest_run(self) -> str | None:
        """The most recently created run that has :meth:`started` (so a train that failed
        before its first epoch is never "latest"), or None."""
        return next((r for r in reversed(self.runs()) if self.started(r)), None)
