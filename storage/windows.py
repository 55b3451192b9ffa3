"""The window store: one HDF5 file per (candle snapshot, window spec), written in bounded memory.

Layouts (see docs/INTERFACES.md):

* ``full`` (default): the tutorial's datasets ``inputs`` (n, N, F), ``outputs`` (n, K, F) scaled,
  ``input_times``/``output_times``, ``original_datas`` (n_rows, F), ``original_inputs``,
  ``original_outputs``; plus ``split`` (n,) int8, ``window_starts`` (n,) int64 and
  ``candle_times`` (n_rows,) int64 ms. Window datasets are filled block by block from the candle
  series, so peak memory depends on the block size, never on the number of windows.
* ``compact``: the candle series once (``series`` scaled, ``original_datas``, ``candle_times``)
  plus ``window_starts`` and ``split``; the reader cuts the same windows on the fly.

Times: ``time_unit`` attribute ``"ms"`` (``input_times`` (n, N) int64 epoch ms) or, for the
``seed`` protocol, ``"s"`` with the tutorial's shapes ``(n, N, 1)`` (Poloniex ``date`` seconds).
"""

from __future__ import annotations

import hashlib
import json
import os
import zlib
from collections import deque
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from storage.atomic import atomic_path
from storage.version import DATA_FORMAT_VERSION

#: Split codes stored in the ``split`` dataset.
SPLIT_CODES: dict[str, int] = {"train": 0, "validation": 1, "test": 2}
#: Target size of one HDF5 chunk and of one write block (bytes of the widest dataset).
CHUNK_BYTES = 1 << 20
#: Attributes stored as JSON text.
JSON_ATTRS = ("features", "split_bounds", "scaler", "counts", "spec")
#: Window dataset -> (candle-series dataset it is cut from, whether it is the future part).
_WINDOW_SOURCES: dict[str, tuple[str, bool]] = {
    "inputs": ("series", False),
    "outputs": ("series", True),
    "input_times": ("candle_times", False),
    "output_times": ("candle_times", True),
    "original_inputs": ("original_datas", False),
    "original_outputs": ("original_datas", True),
}
_ID_RE_LEN = 20


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
    """The int8 code of ``"train"|"validation"|"test"`` (or of 0/1/2), else ``ValueError``."""
    if isinstance(split, str) and split in SPLIT_CODES:
        return SPLIT_CODES[split]
    if isinstance(split, int | np.integer) and int(split) in SPLIT_CODES.values():
        return int(split)
    raise ValueError(f"unknown split {split!r}; valid splits: {', '.join(SPLIT_CODES)}")


def dataset_id(
    candle_fingerprint: str, spec: Mapping[str, Any], code_version: str = DATA_FORMAT_VERSION
) -> str:
    """Stable id (20 hex chars) of (candle fingerprint, window spec, code version)."""
    payload = json.dumps(
        {"candles": candle_fingerprint, "spec": spec, "code_version": code_version},
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:_ID_RE_LEN]


def window_path(windows_root: str | os.PathLike[str], ds_id: str) -> Path:
    """``windows_root/<dataset-id>.h5``, refusing ids that are not plain hex."""
    if not ds_id or any(c not in "0123456789abcdef" for c in ds_id):
        raise ValueError(f"invalid dataset id {ds_id!r}")
    return Path(windows_root) / f"{ds_id}.h5"


def _chunk_rows(row_bytes: int, n: int) -> int:
    return int(max(1, min(n, CHUNK_BYTES // max(1, row_bytes))))


def create_chunked(
    f: h5py.File, name: str, shape: tuple[int, ...], dtype: Any, compress: bool
) -> h5py.Dataset:
    """A chunked (about 1 MiB), shuffled, gzip-1 dataset; empty datasets stay contiguous."""
    if shape[0] == 0 or not compress:
        return f.create_dataset(name, shape=shape, dtype=dtype)
    row_bytes = int(np.prod(shape[1:], dtype=np.int64)) * np.dtype(dtype).itemsize
    chunks = (_chunk_rows(row_bytes, shape[0]), *shape[1:])
    return f.create_dataset(
        name,
        shape=shape,
        dtype=dtype,
        chunks=chunks,
        compression="gzip",
        compression_opts=1,
        shuffle=True,
    )


def _put(f: h5py.File, name: str, data: np.ndarray, compress: bool = True) -> None:
    ds = create_chunked(f, name, data.shape, data.dtype, compress)
    if data.size:
        ds[...] = data


def _encode_attr(value: Any) -> Any:
    if isinstance(value, str | int | float | bool | np.integer | np.floating):
        return value
    return json.dumps(value, sort_keys=True)


def write_window_file(
    path: str | os.PathLike[str],
    arrays: WindowArrays,
    past: int,
    future: int,
    attrs: Mapping[str, Any],
    layout: str | Layout = Layout.FULL,
    tutorial_time_shape: bool = False,
    workers: int | None = None,
    compress: bool = True,
) -> Path:
    """Write a window file atomically (temp file, then rename); returns ``path``.

    Window datasets are filled a chunk at a time by ``workers`` threads (default: up to 4), so
    peak memory is O(n_rows + a few chunks) whatever the number of windows. ``compress=False``
    writes the window datasets contiguous and uncompressed (fast, large; still in blocks).
    """
    layout = Layout(layout)
    original = np.asarray(arrays.original, dtype=np.float64)
    scaled, times = np.asarray(arrays.scaled), np.asarray(arrays.times, dtype=np.int64)
    starts = np.asarray(arrays.starts, dtype=np.int64)
    split = np.asarray(arrays.split, dtype=np.int8)
    n_rows, n_features = original.shape
    if scaled.shape != original.shape or times.shape != (n_rows,) or starts.shape != split.shape:
        raise ValueError("window arrays disagree in shape")
    if starts.size and (starts.min() < 0 or starts.max() + past + future > n_rows):
        raise ValueError("window starts fall outside the candle series")
    if split.size and np.any(np.diff(split) < 0):
        raise ValueError("splits must be chronological (train, then validation, then test)")
    path = Path(path)
    with atomic_path(path, suffix=".h5") as tmp:
        with h5py.File(tmp, "w") as f:
            for key, value in attrs.items():
                f.attrs[key] = _encode_attr(value)
            f.attrs["layout"] = layout.value
            f.attrs["n_windows"] = int(starts.size)
            f.attrs["n_rows"] = int(n_rows)
            _put(f, "original_datas", original)
            _put(f, "candle_times", times)
            _put(f, "window_starts", starts)
            _put(f, "split", split)
            if layout is Layout.COMPACT:
                _put(f, "series", scaled)
            else:
                _write_windows(
                    f,
                    scaled,
                    original,
                    times,
                    starts,
                    past,
                    future,
                    tutorial_time_shape,
                    workers,
                    compress,
                )
    return path


def _write_windows(
    f: h5py.File,
    scaled: np.ndarray,
    original: np.ndarray,
    times: np.ndarray,
    starts: np.ndarray,
    past: int,
    future: int,
    tutorial_time_shape: bool,
    workers: int | None,
    compress: bool = True,
) -> None:
    """Fill the tutorial's window datasets chunk by chunk, never holding more than a few chunks.

    Each chunk is gathered from the candle series, byte-shuffled and deflated (level 1) in a
    thread pool (numpy and zlib release the GIL), then stored with ``write_direct_chunk``: the
    bytes are exactly what HDF5's shuffle+gzip pipeline makes, so any HDF5 reader opens them.
    """
    n, n_features = starts.size, original.shape[1]
    tshape = (1,) if tutorial_time_shape else ()
    plan = [
        ("inputs", scaled, 0, past, (n_features,)),
        ("outputs", scaled, past, future, (n_features,)),
        ("input_times", times, 0, past, tshape),
        ("output_times", times, past, future, tshape),
        ("original_inputs", original, 0, past, (n_features,)),
        ("original_outputs", original, past, future, (n_features,)),
    ]
    datasets = [
        create_chunked(f, name, (n, length, *tail), src.dtype, compress=compress)
        for name, src, _, length, tail in plan
    ]
    if n == 0:
        return
    # Chunk rows (or, uncompressed, block rows), read here: no HDF5 calls in the threads.
    chunk_rows = [
        int(ds.chunks[0])
        if ds.chunks
        else 8 * _chunk_rows(ds.dtype.itemsize * int(np.prod(ds.shape[1:])), n)
        for ds in datasets
    ]
    # Zero-copy window views (n_starts, [F,] length); indexing their first axis copies only the
    # selected windows, many times faster than a (windows, length) fancy index.
    views = [
        np.lib.stride_tricks.sliding_window_view(src[offset:], length, axis=0)
        for _, src, offset, length, _ in plan
    ]

    def encode(k: int, lo: int) -> Any:
        """One chunk (rows ``lo``.. of dataset ``k``), full chunk shape, shuffled + deflated."""
        length, tail = plan[k][3], plan[k][4]
        rows = chunk_rows[k]
        first = starts[lo : lo + rows]
        data = views[k][first]  # (b, F, length) or (b, length)
        if data.ndim == 3:
            data = data.transpose(0, 2, 1)
        data = np.ascontiguousarray(data).reshape((first.size, length, *tail))
        if not compress:
            return data
        if first.size < rows:  # edge chunk: HDF5 stores it padded to the full chunk shape
            padded = np.zeros((rows, *data.shape[1:]), dtype=data.dtype)
            padded[: first.size] = data
            data = padded
        shuffled = data.reshape(-1).view(np.uint8).reshape(-1, data.dtype.itemsize).T.tobytes()
        return zlib.compress(shuffled, 1)

    def store(k: int, lo: int, chunk: Future[Any]) -> None:
        ds = datasets[k]
        if compress:
            ds.id.write_direct_chunk((lo,) + (0,) * (ds.ndim - 1), chunk.result())
        else:
            data = chunk.result()
            ds[lo : lo + data.shape[0]] = data

    jobs = [(k, lo) for k, rows in enumerate(chunk_rows) for lo in range(0, n, rows)]
    workers = max(1, workers or min(4, os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending: deque[tuple[int, int, Future[Any]]] = deque()
        for k, lo in jobs:
            pending.append((k, lo, pool.submit(encode, k, lo)))
            if len(pending) >= 2 * workers:  # bounded: a few chunks in flight
                store(*pending.popleft())
        while pending:
            store(*pending.popleft())


class WindowFile:
    """Read side of a window file (either layout); opens the HDF5 lazily, one handle per process."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"no window file at {self.path}")
        self._file: h5py.File | None = None
        self._pid: int | None = None
        f = self.h5
        self.attrs: dict[str, Any] = {k: _decode_attr(k, v) for k, v in f.attrs.items()}
        self.past = int(self.attrs["past"])
        self.future = int(self.attrs["future"])
        self.layout = Layout(self.attrs.get("layout", Layout.FULL.value))
        self._split = np.asarray(f["split"][...], dtype=np.int8)
        self._starts = np.asarray(f["window_starts"][...], dtype=np.int64)
        self._series: np.ndarray | None = None

    @property
    def h5(self) -> h5py.File:
        """The open ``h5py.File`` (reopened after a fork, e.g. in a worker process)."""
        if self._file is None or self._pid != os.getpid():
            self._file = h5py.File(self.path, "r")
            self._pid = os.getpid()
        return self._file

    def close(self) -> None:
        """Close the HDF5 handle (reopened on next use)."""
        if self._file is not None and self._pid == os.getpid():
            self._file.close()
        self._file = None

    def __enter__(self) -> WindowFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_file"], state["_pid"] = None, None
        return state

    @property
    def n_windows(self) -> int:
        """Number of windows in the file (all splits)."""
        return int(self._split.size)

    @property
    def split(self) -> np.ndarray:
        """Split code of each window (n_windows,) int8."""
        return self._split

    @property
    def window_starts(self) -> np.ndarray:
        """Row of each window's first candle in ``original_datas`` (n_windows,) int64."""
        return self._starts

    def split_range(self, split: str | int) -> tuple[int, int]:
        """Window index range ``[lo, hi)`` of one split (splits are contiguous, in time order)."""
        code = split_code(split)
        lo = int(np.searchsorted(self._split, code, side="left"))
        hi = int(np.searchsorted(self._split, code, side="right"))
        return lo, hi

    def split_size(self, split: str | int) -> int:
        """Number of windows in one split."""
        lo, hi = self.split_range(split)
        return hi - lo

    def read(self, name: str, lo: int, hi: int) -> np.ndarray:
        """Windows ``[lo, hi)`` of ``inputs``, ``outputs``, ``original_*`` or ``*_times``."""
        if name not in _WINDOW_SOURCES:
            raise KeyError(f"unknown window dataset {name!r}; valid: {', '.join(_WINDOW_SOURCES)}")
        if self.layout is Layout.FULL:
            return self.h5[name][lo:hi]
        source, is_output = _WINDOW_SOURCES[name]
        offset, length = (self.past, self.future) if is_output else (0, self.past)
        src = self._scaled_series() if source == "series" else self.h5[source]
        first = int(self._starts[lo]) if hi > lo else 0
        last = int(self._starts[hi - 1]) + offset + length if hi > lo else 0
        rows = np.asarray(src[first:last])  # only the candles these windows cover
        idx = (self._starts[lo:hi, None] - first) + np.arange(offset, offset + length)
        out = rows[idx]
        if source == "candle_times" and self.attrs.get("time_unit") == "s":
            out = out[..., None]
        return out

    def _scaled_series(self) -> np.ndarray:
        if self._series is None:
            self._series = self.h5["series"][...]
        return self._series

    def split_arrays(self, split: str | int) -> tuple[np.ndarray, np.ndarray]:
        """(X (n, N, F), Y (n, K, F)) scaled windows of one split, in memory."""
        lo, hi = self.split_range(split)
        return self.read("inputs", lo, hi), self.read("outputs", lo, hi)

    def split_times(self, split: str | int) -> tuple[np.ndarray, np.ndarray]:
        """(input times (n, N), output times (n, K)) int64 epoch ms of one split, any layout."""
        lo, hi = self.split_range(split)
        out = []
        for name in ("input_times", "output_times"):
            t = self.read(name, lo, hi)
            if t.ndim == 3:
                t = t[..., 0]
            out.append(t * 1000 if self.attrs.get("time_unit") == "s" else t)
        return out[0], out[1]

    def split_originals(self, split: str | int) -> tuple[np.ndarray, np.ndarray]:
        """(original inputs (n, N, F), original outputs (n, K, F)) unscaled, of one split."""
        lo, hi = self.split_range(split)
        return self.read("original_inputs", lo, hi), self.read("original_outputs", lo, hi)


def _decode_attr(key: str, value: Any) -> Any:
    if isinstance(value, bytes):
        value = value.decode()
    if key in JSON_ATTRS and isinstance(value, str):
        return json.loads(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return value
