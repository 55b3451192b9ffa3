"""Checkpoints of one training: which to keep, saving one atomically, and where to resume."""

from __future__ import annotations

import contextlib
import os
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np

from storage.runs import ModelDir, checkpoint_name


class CheckpointMode(StrEnum):
    """Which checkpoints to keep: every epoch's, the best one's, or none (sweeps)."""

    EVERY = "every"
    BEST = "best"
    NONE = "none"


def save_checkpoint(model: Any, md: ModelDir, epoch: int, val_loss: float) -> Path:
    """Save model + optimizer state as this epoch's checkpoint, atomically."""
    final = md.checkpoint_dir / checkpoint_name(epoch, val_loss)
    md.checkpoint_dir.mkdir(parents=True, exist_ok=True)
    tmp = md.partial_path(final)
    try:
        model.save(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    return final


def prune_checkpoints(md: ModelDir, mode: CheckpointMode, keep_latest: bool) -> None:
    """Keep only what ``mode`` asks for (plus the latest while training, to resume from)."""
    if mode is CheckpointMode.EVERY:
        return
    history = md.read_history()
    files = md.checkpoint_files()
    if history.empty:
        return
    keep: set[int] = set()
    if keep_latest:
        keep.add(int(history["epoch"].iloc[-1]))
    if mode is CheckpointMode.BEST:
        finite = history[np.isfinite(history["val_loss"])]
        if len(finite):
            keep.add(int(finite.loc[finite["val_loss"].idxmin(), "epoch"]))
    for epoch, path in files.items():
        if epoch not in keep:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def resume_point(md: ModelDir) -> tuple[int, Path | None]:
    """Last recorded epoch whose checkpoint exists, and that checkpoint (0, None: fresh start)."""
    md.discard_unrecorded()
    history = md.read_history()
    files = md.checkpoint_files()
    for epoch in sorted(history["epoch"].tolist(), reverse=True):
        if epoch in files:
            if epoch != int(history["epoch"].iloc[-1]):
                md.truncate_history(epoch)  # newer rows lost their checkpoints (mode none)
                md.discard_unrecorded()
            return int(epoch), files[epoch]
    if len(history):
        md.truncate_history(0)
    return 0, None
