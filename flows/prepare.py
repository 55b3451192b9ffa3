"""The ``prepare`` flow: stored candles -> one HDF5 window file per (candle snapshot, spec)."""

from __future__ import annotations

from prefect import flow, get_run_logger

from storage.layout import DataLayout
from storage.schema import Interval, validate_symbol
from storage.windows.store import WindowStore
from tasks.windows.dataset import candle_fingerprint_task, cut_windows_task, window_dataset_id
from tasks.windows.spec import WindowSpec


@flow(name="prepare", validate_parameters=True)
def prepare(
    symbol: str = "BTC_USDT",
    interval: str = "MINUTE_5",
    protocol: str = "honest",
    past: int = 256,
    future: int = 16,
    stride: int | None = None,
    features: list[str] | None = None,
    scaler: str = "minmax",
    splits: list[float] | None = None,
    layout: str = "full",
    drop_gaps: bool | None = None,
    data_dir: str | None = None,
) -> str:
    """Cut the stored candles into windows; returns the path of ``windows/<dataset-id>.h5``.

    Parameters are validated before any work (``ValueError`` naming the parameter). Same
    candles and spec: the file already there is returned untouched (and the task is cached);
    a file deleted behind Prefect's back refreshes the task's cache.
    """
    symbol = validate_symbol(symbol)
    interval = Interval.parse(interval).value
    spec = WindowSpec(
        protocol=protocol,
        past=past,
        future=future,
        stride=stride,
        features=tuple(features or ("close",)),
        scaler=scaler,
        splits=None if splits is None else tuple(splits),
        layout=layout,
        drop_gaps=drop_gaps,
    )
    dirs = DataLayout.at(data_dir)
    root = str(dirs.root)
    fingerprint = candle_fingerprint_task(symbol, interval, root)
    ds_id = window_dataset_id(symbol, interval, spec, fingerprint)
    cut = cut_windows_task.with_options(refresh_cache=not WindowStore(dirs.windows).has(ds_id))
    summary = cut(symbol, interval, spec.to_dict(), ds_id, fingerprint, root)
    get_run_logger().info(
        "%s windows %s: %s (%s)",
        "wrote" if summary["created"] else "reused",
        summary["windows"],
        summary["path"],
        spec.protocol.value,
    )
    return summary["path"]
