"""Checkpoint selection by validation loss, never by file time.

Per model: the best epoch is the argmin of ``val_loss`` in its own history (ties: the earliest).
A model with any NaN or infinite loss is *diverged*: listed, never chosen. The checkpoint of the
chosen epoch is found by its epoch number and loaded with Keras' safe mode; when it is missing or
does not load (a truncated file), the next best recorded epoch whose checkpoint loads is used and
the skipped files are named (:func:`load_best_checkpoint`).
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from storage.errors import BadInputError, CorruptStoreError
from storage.runs import REBUILD_RUN, REQUIRED_HISTORY_COLUMNS


class ModelStatus(StrEnum):
    """Outcome of selection for one model."""

    OK = "ok"
    DIVERGED = "diverged"
    NO_HISTORY = "no_history"
    NO_CHECKPOINT = "no_checkpoint"  # no recorded epoch's checkpoint loads: listed, not scored


class CheckpointMissingError(FileNotFoundError):
    """The checkpoint of the chosen epoch is not on disk (the message names the file)."""


@dataclass(frozen=True)
class EpochChoice:
    """The selected epoch of one model; ``best_epoch`` is None unless ``status`` is OK."""

    model: str
    status: ModelStatus
    best_epoch: int | None
    val_loss: float | None
    loss: float | None
    n_epochs: int

    @property
    def eligible(self) -> bool:
        """Whether this model may be scored and become champion."""
        return self.status is ModelStatus.OK


def validate_history(history: pd.DataFrame) -> pd.DataFrame:
    """Check a history ``(epochs, [epoch, loss, val_loss])``; return it sorted by epoch."""
    missing = [c for c in REQUIRED_HISTORY_COLUMNS if c not in history.columns]
    if missing:
        raise BadInputError(f"history lacks columns {missing} (has {list(history.columns)})")
    out = history.loc[:, list(REQUIRED_HISTORY_COLUMNS)].copy()
    epochs = pd.to_numeric(out["epoch"], errors="coerce")
    if epochs.isna().any() or (epochs < 1).any() or (epochs != epochs.round()).any():
        raise BadInputError("history epochs must be whole numbers from 1")
    if epochs.duplicated().any():
        raise BadInputError(f"history has duplicate epochs {sorted(epochs[epochs.duplicated()])}")
    out["epoch"] = epochs.astype("int64")
    for col in ("loss", "val_loss"):
        out[col] = pd.to_numeric(out[col], errors="coerce").astype("float64")
    return out.sort_values("epoch", kind="stable").reset_index(drop=True)


def choose_best_epoch(model: str, history: pd.DataFrame) -> EpochChoice:
    """Argmin of ``val_loss`` (ties: earliest epoch); any non-finite loss marks it diverged."""
    h = validate_history(history)
    if h.empty:
        return EpochChoice(model, ModelStatus.NO_HISTORY, None, None, None, 0)
    losses = h[["loss", "val_loss"]].to_numpy(dtype=np.float64)
    if not np.isfinite(losses).all():
        return EpochChoice(model, ModelStatus.DIVERGED, None, None, None, len(h))
    best = int(np.argmin(h["val_loss"].to_numpy()))  # numpy argmin returns the first minimum
    row = h.iloc[best]
    return EpochChoice(
        model=model,
        status=ModelStatus.OK,
        best_epoch=int(row["epoch"]),
        val_loss=float(row["val_loss"]),
        loss=float(row["loss"]),
        n_epochs=len(h),
    )


def checkpoint_for_epoch(checkpoints: Mapping[int, Path], epoch: int, checkpoint_dir: Path) -> Path:
    """The checkpoint file of ``epoch``; raise :class:`CheckpointMissingError` naming the file."""
    path = checkpoints.get(epoch)
    if path is None:
        expected = checkpoint_dir / f"epoch-{epoch:03d}-<val_loss>.keras"
        have = ", ".join(str(e) for e in sorted(checkpoints)) or "none"
        raise CheckpointMissingError(
            f"checkpoint for epoch {epoch} not found: expected {expected} (epochs on disk: {have})"
        )
    path = Path(path)
    if not path.is_file():
        raise CheckpointMissingError(f"checkpoint for epoch {epoch} not found: {path}")
    return path


def load_checkpoint(path: Path) -> Any:
    """Load a ``.keras`` checkpoint with ``safe_mode=True`` (no lambdas, no pickles)."""
    path = Path(path)
    if path.suffix != ".keras":
        raise BadInputError(f"refusing to load {path}: only native .keras checkpoints are loaded")
    if not path.is_file():
        raise CheckpointMissingError(f"checkpoint not found: {path}")
    if not zipfile.is_zipfile(path):  # a .keras file is a zip archive
        raise CorruptStoreError(path, "not a readable .keras (zip) file", REBUILD_RUN)
    import tasks.zoo  # noqa: F401 - the zoo registers its custom layers, if any, on import
    from tasks.training.runtime import import_backend

    import_backend()  # quietly: the backend's C++ start-up chatter stays out of the logs
    import keras

    return keras.saving.load_model(path, compile=False, safe_mode=True)


@dataclass(frozen=True)
class LoadedCheckpoint:
    """The checkpoint selection settled on (``epoch`` None when none loads), the loaded
    network, and one line per checkpoint skipped on the way (missing or unloadable)."""

    epoch: int | None
    path: Path | None
    val_loss: float | None
    model: Any
    skipped: tuple[str, ...]


def load_best_checkpoint(
    choice: EpochChoice,
    history: pd.DataFrame,
    checkpoints: Mapping[int, Path],
    checkpoint_dir: Path,
    loader: Callable[[Path], Any] | None = None,
) -> LoadedCheckpoint:
    """Load the chosen epoch's checkpoint, else the best other recorded epoch's (by
    ``val_loss``, ties: earliest) that loads; each one missing or failing to load is skipped
    and named. ``loader`` defaults to :func:`load_checkpoint`."""
    loader = loader or load_checkpoint
    ranked = validate_history(history).sort_values(["val_loss", "epoch"], kind="stable")
    skipped: list[str] = []
    for row in ranked.itertuples(index=False):
        epoch = int(row.epoch)
        if epoch != choice.best_epoch and epoch not in checkpoints:
            continue  # not kept (``--checkpoints best``): nothing to skip
        path = checkpoints.get(epoch)
        try:
            path = checkpoint_for_epoch(checkpoints, epoch, checkpoint_dir)
            net = loader(path)
        except CorruptStoreError as exc:
            skipped.append(f"epoch {epoch} {path}: {exc.problem}")
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
            skipped.append(f"epoch {epoch} {path or checkpoint_dir}: {exc}")
        else:
            return LoadedCheckpoint(epoch, path, float(row.val_loss), net, tuple(skipped))
    return LoadedCheckpoint(None, None, None, None, tuple(skipped))


def choose_champion(candidates: Mapping[str, float]) -> str | None:
    """The model with the lowest finite validation score (ties: first in mapping order)."""
    best: tuple[float, str] | None = None
    for name, score in candidates.items():
        if score is None or not np.isfinite(score):
            continue
        if best is None or score < best[0]:
            best = (float(score), name)
    return None if best is None else best[1]
