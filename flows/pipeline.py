"""The whole pipeline as one flow: ingest -> prepare -> train the zoo -> select -> report.

Every stage is a subflow with its own caching: with no new candles the candle fingerprint and
so the dataset id are unchanged, prepare reuses its file, every training task is Cached, and the
report is reused while its inputs are unchanged. A retried run (the UI's Retry button) therefore
skips the stages that completed and training resumes from its last checkpoint.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger

from flows.params import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_EPOCHS,
    DEFAULT_FOLD_MODE,
    DEFAULT_FOLDS,
    DEFAULT_FUTURE,
    DEFAULT_INTERVAL,
    DEFAULT_MODELS,
    DEFAULT_PARALLEL,
    DEFAULT_PAST,
    DEFAULT_PATIENCE,
    DEFAULT_PROTOCOL,
    DEFAULT_SCALER,
    DEFAULT_SEED,
    DEFAULT_SYMBOL,
    DEFAULT_TASK_RUNNER,
    Backend,
    BaseUrl,
    BatchSize,
    DaskAddress,
    DataDir,
    Epochs,
    FoldModeName,
    Folds,
    Future,
    Intervals,
    Models,
    ModelsPerGpu,
    Parallel,
    Past,
    Patience,
    ProtocolName,
    ScalerName,
    Seed,
    Stride,
    Symbols,
    TaskRunner,
    When,
    market_label,
    market_list,
)
from storage.layout import stage_prefixes
from storage.remote import mirrored
from storage.version import DATA_FORMAT_VERSION


def training_run_id(
    dataset: str, models: list[str], epochs: int, batch_size: int, seed: int,
    patience: int | None,
) -> str:
    """The run id of a training request: ``<dataset-id>-<digest of the training settings>``.

    Derived from the inputs, so a re-run with the same candles and settings lands in the same
    run folder: finished models are not retrained (their tasks are Cached) and an interrupted
    one resumes from its last checkpoint.
    """
    settings = {
        "models": sorted(models), "epochs": epochs, "batch_size": batch_size, "seed": seed,
        "patience": patience, "code_version": DATA_FORMAT_VERSION,
    }
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:10]
    return f"{Path(dataset).stem}-{digest}"


def fold_specs(
    protocol: Any, past: int, future: int, stride: int | None, scaler: Any, folds: int,
    fold_mode: Any,
) -> list[Any]:
    """The window spec of every fold; ``BadInputError`` naming the parameter when the
    combination cannot be cut (e.g. folds or a window scaler with the seed protocol)."""
    from tasks.windows.spec import WindowSpec

    return [
        WindowSpec(protocol=protocol, past=past, future=future, stride=stride, scaler=scaler,
                   folds=folds, fold=fold, fold_mode=fold_mode)
        for fold in range(folds)
    ]


@flow(name="pipeline", log_prints=True, validate_parameters=True)
def pipeline(
    symbols: Symbols = [DEFAULT_SYMBOL],  # noqa: B006 - Prefect shows the default in its form
    intervals: Intervals = [DEFAULT_INTERVAL],  # noqa: B006
    start: When = None,
    base_url: BaseUrl = None,
    data_dir: DataDir = None,
    protocol: ProtocolName = DEFAULT_PROTOCOL,
    past: Past = DEFAULT_PAST,
    future: Future = DEFAULT_FUTURE,
    stride: Stride = None,
    scaler: ScalerName = DEFAULT_SCALER,
    folds: Folds = DEFAULT_FOLDS,
    fold_mode: FoldModeName = DEFAULT_FOLD_MODE,
    models: Models = DEFAULT_MODELS,
    epochs: Epochs = DEFAULT_EPOCHS,
    batch_size: BatchSize = DEFAULT_BATCH_SIZE,
    parallel: Parallel = DEFAULT_PARALLEL,
    patience: Patience = DEFAULT_PATIENCE,
    seed: Seed = DEFAULT_SEED,
    task_runner: TaskRunner = DEFAULT_TASK_RUNNER,
    dask_address: DaskAddress = None,
    backend: Backend = None,
    models_per_gpu: ModelsPerGpu = None,
) -> dict[str, Any]:
    """Ingest new candles, cut windows, train the zoo, pick checkpoints and publish the report,
    for every market (each symbol at each interval).

    Args:
        symbols: Poloniex markets, BASE_QUOTE (e.g. BTC_USDT); ingested in parallel.
        intervals: Candle intervals (Poloniex names, e.g. MINUTE_5); every symbol at each.
        start: First candle to fetch when the store is empty (default: 30 days before now).
        base_url: Poloniex API base URL (default $CRYPTOFLOW_POLONIEX_URL or the live API);
            point it at `cryptoflow replay` to run offline.
        data_dir: Data directory holding the stores (default $CRYPTOFLOW_DATA_DIR or ./data).
        protocol: `honest` (scaler fit on training rows, train/validation/test with an
            embargo) or `seed` (the tutorial's protocol, leaks included, for comparison).
        past: Candles in each input window (the tutorial: 256).
        future: Candles predicted after each window (the tutorial: 16).
        stride: Step between window starts (default: honest 1; seed past+future).
        scaler: minmax or standard (fit on training rows), or window (each window divided by
            its last input close, residual heads: an untrained model forecasts persistence).
        folds: Walk-forward folds (honest): the zoo is trained, selected and tested once per
            fold, on consecutive test blocks; 1 is one chronological split.
        fold_mode: `expanding` (each fold trains from the first candle) or `sliding`.
        models: Models of the zoo to train.
        epochs: Maximum epochs per model (the tutorial: 100).
        batch_size: Training batch size (the tutorial: 8).
        parallel: Models trained at once, each in its own process (shared by all markets:
            markets train one after another on the same slots).
        patience: Early stopping after this many epochs without a better val_loss (empty: off).
        seed: Random seed of every model (same seed, same history on CPU).
        task_runner: Where the zoo trains: `process` (one local process per model) or `dask`.
        dask_address: Dask scheduler (tcp://host:8786); empty with `dask`: a local cluster.
        backend: Keras backend of the training processes (tensorflow, jax or torch); empty:
            $CRYPTOFLOW_BACKEND, else $KERAS_BACKEND, else the default (tasks.training.backends).
        models_per_gpu: Models trained at once on each GPU; empty: from its free memory.
    """
    from flows.ingest import ingest
    from flows.report import markets_summary

    logger = get_run_logger()
    fold_specs(protocol, past, future, stride, scaler, folds, fold_mode)  # before any write
    markets = market_list(symbols, intervals)
    names = [m.value for m in models]
    settings = {
        "protocol": protocol.value, "past": past, "future": future, "stride": stride,
        "scaler": scaler.value, "folds": folds, "fold_mode": fold_mode.value, "models": names,
        "epochs": epochs, "batch_size": batch_size, "parallel": parallel, "patience": patience,
        "seed": seed, "task_runner": task_runner, "dask_address": dask_address,
        "backend": backend, "models_per_gpu": models_per_gpu,
    }
    by_interval = {iv: [s for s, i in markets if i == iv] for iv in dict.fromkeys(
        i for _, i in markets)}
    prefixes = [p for s, i in markets for p in stage_prefixes(s, i)]
    # A data directory on object storage (s3://...) is worked on through a local mirror:
    # its series pulled first, the rest as each stage opens it, every changed file pushed whole
    # at the end (local paths pass through).
    with mirrored(data_dir, prefixes=prefixes) as data_dir:
        ingested = []
        for iv, syms in by_interval.items():  # one ingest per interval, its symbols in parallel
            ingested += ingest(symbols=syms, interval=iv, start=start, base_url=base_url,
                               data_dir=data_dir)
        results = {}
        for symbol, iv in markets:  # one after another: the zoo's slots are shared
            results[market_label(symbol, iv)] = train_market(symbol, iv, data_dir, settings)
            logger.info("%s: report %s", market_label(symbol, iv),
                        results[market_label(symbol, iv)]["report"])
        summary = markets_summary(symbols=symbols, intervals=[i.value for i in intervals],
                                  data_dir=data_dir)
    first = results[market_label(*markets[0])]
    result = {"ingest": ingested, **first}
    result["summary"] = summary
    if len(markets) > 1:
        result["markets"] = results
    return result


def train_market(symbol: str, interval: str, data_dir: str | None, settings: dict[str, Any]
                 ) -> dict[str, Any]:
    """Prepare, train and report one market, fold by fold (oldest first: the last fold's
    winner is the champion candidate); the walk-forward verdict when there are folds."""
    from flows.prepare import prepare
    from flows.report import report, walk_forward
    from flows.train import train

    logger = get_run_logger()
    s = settings
    folds = s["folds"]
    datasets, run_ids, reports = [], [], []
    for fold in range(folds):
        dataset = prepare(
            symbol=symbol, interval=interval, protocol=s["protocol"], past=s["past"],
            future=s["future"], stride=s["stride"], scaler=s["scaler"], folds=folds, fold=fold,
            fold_mode=s["fold_mode"], data_dir=data_dir,
        )
        run_id = train(
            models=s["models"], epochs=s["epochs"], batch_size=s["batch_size"],
            parallel=s["parallel"], dataset=dataset, data_dir=data_dir, seed=s["seed"],
            patience=s["patience"],
            run_id=training_run_id(dataset, s["models"], s["epochs"], s["batch_size"], s["seed"],
                                   s["patience"]),
            task_runner=s["task_runner"], dask_address=s["dask_address"],
            backend=s.get("backend"), models_per_gpu=s.get("models_per_gpu"),
        )
        reports.append(report(run_id=run_id, data_dir=data_dir))
        datasets.append(dataset)
        run_ids.append(run_id)
        if folds > 1:
            logger.info("%s fold %d/%d: run %s, report %s", market_label(symbol, interval),
                        fold + 1, folds, run_id, reports[-1])
    result = {"dataset": datasets[-1], "run_id": run_ids[-1], "report": reports[-1]}
    if folds > 1:
        verdict = walk_forward(run_ids=run_ids, data_dir=data_dir)
        logger.info("%s walk-forward verdict: %s", market_label(symbol, interval), verdict)
        result |= {"datasets": datasets, "run_ids": run_ids, "reports": reports,
                   "walk_forward": verdict}
    return result
