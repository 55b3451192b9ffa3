"""The window file's vocabulary: layouts, split codes, window datasets, attributes and ids."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np

from storage.errors import BadInputError
from storage.version import DATA_FORMAT_VERSION

#: File name suffix of a window file: ``<dataset-id>.h5``.
SUFFIX = ".h5"
#: Split codes stored in the ``split`` dataset.
SPLIT_CODES: dict[str, int] = {"train": 0, "validation": 1, "test": 2}
#: Attributes stored as JSON text.
JSON_ATTRS = ("features", "split_bounds", "scaler", "counts", "spec")
#: Window dataset -> (candle-series dataset it is cut from, whether it is the future part).
WINDOW_SOURCES: dict[str, tuple[str, bool]] = {
    "inputs": ("series", False),
    "outputs": ("series", True),
    "input_times": ("candle_times", False),
    "output_times": ("candle_times", True),
    "original_inputs": ("original_datas", False),
    "original_outputs": ("original_datas", True),
}
_ID_LEN = 20


class Layout(StrEnum):
    """How windows are stored."""

    FULL = "full"
    COMPACT = "compact"


@dataclass(frozen=True)
class WindowArrays:
    """Everything a window file is cut from; sizes are O(n_rows) plus O(n_windows) indices.

    original (n_rows, F) float64, scaled (n_rows, F) float32|float64, times (n_rows,) int64 in the
    file's time unit, starts (n_windows,) int64 row of each window's first candle, split
    (n_windows,) int8 (0 train, 1 validation, 2 test, non-decreasing).
    """

    original: np.ndarray
    scaled: np.ndarray
    times: np.ndarray
    starts: np.ndarray
    split: np.ndarray


def split_code(split: str | int) -> int:
    """The int8 code of ``"train"|"validation"|"test"`` (or of 0/1/2), else ``BadInputError``."""
    if isinstance(split, str) and split in SPLIT_CODES:
        return SPLIT_CODES[split]
    if isinstance(split, int | np.integer) and int(split) in SPLIT_CODES.values():
        return int(split)
    raise BadInputError(f"unknown split {split!r}; valid splits: {', '.join(SPLIT_CODES)}")


def dataset_id(
    candle_fingerprint: str, spec: Mapping[str, Any], code_version: str = DATA_FORMAT_VERSION
) -> str:
    """Stable id (20 hex chars) of (candle fingerprint, window spec, code version)."""
    payload = json.dumps(
        {"candles": candle_fingerprint, "spec": spec, "code_version": code_version},
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:_ID_LEN]


def window_path(windows_root: str | os.PathLike[str], ds_id: str) -> Path:
    """``windows_root/<dataset-id>.h5``, refusing ids that are not plain hex (under a remote
    data directory's mirror, the file is pulled first, once)."""
    from storage.remote import sync_scope

    if not ds_id or any(c not in "0123456789abcdef" for c in ds_id):
        raise BadInputError(f"invalid dataset id {ds_id!r}")
    path = Path(windows_root) / f"{ds_id}{SUFFIX}"
    sync_scope(path)
    return path


def rebuild_command(symbol: Any = None, interval: Any = None) -> str:
    """The command that writes a window file of (symbol, interval) again."""
    return f"cryptoflow prepare --symbol {symbol or 'SYMBOL'} --interval {interval or 'INTERVAL'}"


def encode_attr(value: Any) -> Any:
    """An attribute as HDF5 stores it: scalars as they are, anything structured as JSON text."""
    if isinstance(value, str | int | float | bool | np.integer | np.floating):
        return value
    return json.dumps(value, sort_keys=True)


def decode_attr(key: str, value: Any) -> Any:
    """An attribute as read back: text as ``str``, JSON attributes parsed, numpy scalars plain."""
    if isinstance(value, bytes):
        value = value.decode()
    if key in JSON_ATTRS and isinstance(value, str):
        return json.loads(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return value
