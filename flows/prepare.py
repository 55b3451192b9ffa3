"""The ``prepare`` flow: stored candles -> one HDF5 window file per (candle snapshot, spec)."""

from __future__ import annotations

from prefect import flow, get_run_logger

from flows.params import (
    DEFAULT_FOLD_MODE,
    DEFAULT_FOLDS,
    DEFAULT_FUTURE,
    DEFAULT_INTERVAL,
    DEFAULT_LAYOUT,
    DEFAULT_PAST,
    DEFAULT_PROTOCOL,
    DEFAULT_SCALER,
    DEFAULT_SYMBOL,
    DataDir,
    Features,
    Fold,
    FoldModeName,
    Folds,
    Future,
    IntervalName,
    LayoutName,
    Past,
    ProtocolName,
    ScalerName,
    Splits,
    Stride,
    Symbol,
)
from storage.layout import DataLayout
from tasks.windows.dataset import (
    candle_fingerprint_task,
    check_windows_task,
    cut_windows_task,
    window_dataset_id,
)
from tasks.windows.spec import WindowSpec


@flow(name="prepare", validate_parameters=True)
def prepare(
    symbol: Symbol = DEFAULT_SYMBOL,
    interval: IntervalName = DEFAULT_INTERVAL,
    protocol: ProtocolName = DEFAULT_PROTOCOL,
    past: Past = DEFAULT_PAST,
    future: Future = DEFAULT_FUTURE,
    stride: Stride = None,
    features: Features = None,
    scaler: ScalerName = DEFAULT_SCALER,
    splits: Splits = None,
    layout: LayoutName = DEFAULT_LAYOUT,
    drop_gaps: bool | None = None,
    folds: Folds = DEFAULT_FOLDS,
    fold: Fold = 0,
    fold_mode: FoldModeName = DEFAULT_FOLD_MODE,
    data_dir: DataDir = None,
) -> str:
    """Cut the stored candles into windows; returns the path of ``windows/<dataset-id>.h5``.

    Parameters are validated before any work (naming the parameter). Same candles and spec:
    the file already there is returned untouched (and the task is cached); a file deleted
    behind Prefect's back refreshes the task's cache. First the window store is tidied:
    temporary files of crashed writers are removed, and a window file that cannot be opened is
    moved aside (``<id>.h5.corrupt-<time>``, logged) so that it is written again.

    Args:
        symbol: Poloniex market, BASE_QUOTE (e.g. BTC_USDT).
        interval: Candle interval (Poloniex names, e.g. MINUTE_5).
        protocol: `honest` (scaler fit on training rows, train/validation/test with an
            embargo) or `seed` (the tutorial's protocol, leaks included, for comparison).
        past: Candles in each input window (the tutorial: 256).
        future: Candles predicted after each window (the tutorial: 16).
        stride: Step between window starts (default: honest 1; seed past+future, or 1).
        features: Columns of each window: open, high, low, close, volume_base, volume_quote,
            trade_count, log_return (default: close).
        scaler: How features are scaled: minmax or standard (fit on training rows), or
            window (each window divided by its last input close; models get residual heads,
            so an untrained model forecasts persistence).
        splits: Fractions train,validation,test (honest; default 0.7,0.15,0.15) or
            train,validation (seed; default 0.8,0.2).
        layout: `full` (the tutorial's datasets) or `compact` (series + window starts).
        drop_gaps: Drop windows that span missing candles (default: honest yes, seed no).
        folds: Walk-forward folds (honest): 1 is one chronological split; K > 1 tests on K
            consecutive blocks at the end of the series, one per fold.
        fold: Which fold to cut, 0 = the oldest (with folds > 1).
        fold_mode: `expanding` (each fold trains from the first candle) or `sliding` (each
            fold trains on as many candles as the first).
        data_dir: Data directory holding the stores (default $CRYPTOFLOW_DATA_DIR or ./data).
    """
    interval = interval.value
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
        folds=folds,
        fold=fold,
        fold_mode=fold_mode,
    )
    root = str(DataLayout.at(data_dir).root)
    store = check_windows_task(root)
    fingerprint = candle_fingerprint_task(symbol, interval, root)
    ds_id = window_dataset_id(symbol, interval, spec, fingerprint)
    cut = cut_windows_task.with_options(refresh_cache=ds_id not in store["intact"])
    summary = cut(symbol, interval, spec.to_dict(), ds_id, fingerprint, root)
    get_run_logger().info(
        "%s windows %s: %s (%s)%s",
        "wrote" if summary["created"] else "reused",
        summary["windows"],
        summary["path"],
        spec.protocol.value,
        f"; rebuilt, the unreadable file is kept as {store['moved'][ds_id]}"
        if ds_id in store["moved"] else "",
    )
    return summary["path"]
