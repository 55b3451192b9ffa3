"""Writing a window file: atomic, chunked, in bounded memory whatever the number of windows.

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

import os
import zlib
from collections import deque
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from storage.atomic import atomic_path
from storage.errors import BadInputError
from storage.windows.format import SUFFIX, WINDOW_SOURCES, Layout, WindowArrays, encode_attr

#: Target size of one HDF5 chunk and of one write block (bytes of the widest dataset).
CHUNK_BYTES = 1 << 20


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
        raise BadInputError("window arrays disagree in shape")
    if starts.size and (starts.min() < 0 or starts.max() + past + future > n_rows):
        raise BadInputError("window starts fall outside the candle series")
    if split.size and np.any(np.diff(split) < 0):
        raise BadInputError("splits must be chronological (train, then validation, then test)")
    path = Path(path)
    with atomic_path(path, suffix=SUFFIX) as tmp:
        with h5py.File(tmp, "w", locking=False) as f:  # atomic_path holds the lock
            for key, value in attrs.items():
                f.attrs[key] = encode_attr(value)
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
    series = {"series": scaled, "candle_times": times, "original_datas": original}
    plan = [
        (
            name,
            series[source],
            past if is_output else 0,
            future if is_output else past,
            tshape if source == "candle_times" else (n_features,),
        )
        for name, (source, is_output) in WINDOW_SOURCES.items()
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
