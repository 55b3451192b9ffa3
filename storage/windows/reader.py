"""Reading a window file (either layout): attributes, split ranges and windows, in slices."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from storage.errors import CorruptStoreError
from storage.windows.format import WINDOW_SOURCES, Layout, decode_attr, rebuild_command, split_code


def corrupt_window_file(
    path: Path, exc: BaseException, attrs: dict[str, Any] | None = None
) -> CorruptStoreError:
    """The error for a window file that cannot be read; the rebuild names its market if known."""
    attrs = attrs or {}
    return CorruptStoreError(
        path,
        f"cannot be read as a window file ({type(exc).__name__}: {exc})",
        rebuild=rebuild_command(attrs.get("symbol"), attrs.get("interval")),
    )


def read_attrs(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The decoded attributes of a window file; ``CorruptStoreError`` when it cannot be read."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no window file at {path}")
    try:
        with h5py.File(path, "r") as f:
            return {k: decode_attr(k, v) for k, v in f.attrs.items()}
    except (OSError, TypeError, ValueError) as exc:
        raise corrupt_window_file(path, exc) from exc


#: Datasets each layout holds besides ``window_starts`` and ``split`` (one row per window).
SERIES_DATASETS = ("original_datas", "candle_times")
LAYOUT_DATASETS: dict[Layout, tuple[str, ...]] = {
    Layout.FULL: tuple(WINDOW_SOURCES),
    Layout.COMPACT: ("series",),
}


def check_window_file(path: str | os.PathLike[str]) -> None:
    """``CorruptStoreError`` unless ``path`` opens as a window file whose datasets all read.

    Checks the attributes, each dataset of the layout (there, one row per window or candle),
    and reads each one's first and last row: cheap whatever the file's size.
    """
    with WindowFile(path) as wf:
        try:
            f = wf.h5
            n_rows = int(wf.attrs.get("n_rows", f["original_datas"].shape[0]))
            expected = {name: n_rows for name in SERIES_DATASETS}
            expected.update(window_starts=wf.n_windows, split=wf.n_windows)
            for name in LAYOUT_DATASETS[wf.layout]:
                expected[name] = n_rows if name == "series" else wf.n_windows
            for name, rows in expected.items():
                ds = f[name]
                if ds.shape[0] != rows:
                    raise ValueError(f"{name} has {ds.shape[0]} rows, expected {rows}")
                if rows:
                    ds[0], ds[rows - 1]
        except (OSError, KeyError, TypeError, ValueError) as exc:
            raise corrupt_window_file(wf.path, exc, wf.attrs) from exc


class WindowFile:
    """Read side of a window file (either layout); opens the HDF5 lazily, one handle per process."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"no window file at {self.path}")
        self._file: h5py.File | None = None
        self._pid: int | None = None
        self.attrs: dict[str, Any] = {}
        try:
            f = self.h5
            self.attrs = {k: decode_attr(k, v) for k, v in f.attrs.items()}
            self.past = int(self.attrs["past"])
            self.future = int(self.attrs["future"])
            self.layout = Layout(self.attrs.get("layout", Layout.FULL.value))
            self._split = np.asarray(f["split"][...], dtype=np.int8)
            self._starts = np.asarray(f["window_starts"][...], dtype=np.int64)
        except (OSError, KeyError, TypeError, ValueError) as exc:
            self.close()
            raise corrupt_window_file(self.path, exc, self.attrs) from exc
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
        if name not in WINDOW_SOURCES:
            raise KeyError(f"unknown window dataset {name!r}; valid: {', '.join(WINDOW_SOURCES)}")
        if self.layout is Layout.FULL:
            return self.h5[name][lo:hi]
        source, is_output = WINDOW_SOURCES[name]
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
