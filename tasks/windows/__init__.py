"""Windowing: candles cut into (past -> future) training windows, and the readers models use.

``spec`` (``WindowSpec`` and its vocabularies), ``cut`` (pure windowing), ``plan`` (the ``seed``
and ``honest`` protocols), ``dataset`` (writing through the window store, the Prefect tasks),
``reader`` (``open_dataset``). The HDF5 itself lives in :mod:`storage.windows`.
"""

from typing import Any

from tasks.windows.plan import plan_windows
from tasks.windows.reader import WindowDataset, open_dataset
from tasks.windows.spec import Feature, Protocol, WindowSpec

__all__ = [
    "Feature",
    "Protocol",
    "WindowDataset",
    "WindowSpec",
    "open_dataset",
    "plan_windows",
    "write_windows",
]


def __getattr__(name: str) -> Any:
    """``write_windows`` on first use: it brings Prefect, which the training path never needs
    (the GPU host has none)."""
    if name == "write_windows":
        from tasks.windows.dataset import write_windows

        return write_windows
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
