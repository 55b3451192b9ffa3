"""The window store: one HDF5 file per (candle snapshot, window spec) under ``windows/``.

``format`` (layouts, split codes, ids, attributes), ``writer`` (atomic, bounded-memory writes),
``reader`` (``WindowFile``), ``store`` (``WindowStore``: locate, newest, summary).
"""

from storage.windows.format import SPLIT_CODES, Layout, WindowArrays, dataset_id, window_path
from storage.windows.reader import WindowFile
from storage.windows.store import WindowStore
from storage.windows.writer import write_window_file

__all__ = [
    "SPLIT_CODES",
    "Layout",
    "WindowArrays",
    "WindowFile",
    "WindowStore",
    "dataset_id",
    "window_path",
    "write_window_file",
]
