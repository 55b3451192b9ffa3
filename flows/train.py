"""The ``train`` flow: the model zoo trained in parallel, one Prefect task run (and one process)
per model, checkpoints every epoch in ``runs/<run-id>/<model>/``.

Concurrency (``tasks.training.task``): one slot per GPU, or ``--parallel`` CPU slots sharing the
cores; each model's task waits for a free slot, and on a GPU holds its Prefect concurrency limit.
With ``task_runner="dask"`` each model is one task on a Dask cluster (``flows.runners``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.futures import wait

from flows.runners import check_runner, train_zoo_on_dask
from storage.layout import DataLayout
from storage.runs import RunStore, validate_name
from storage.schema import Interval, validate_symbol
from tasks.progress import TerminalProgress
from tasks.training.loop import DEFAULT_BATCH_SIZE, DEFAULT_EPOCHS, DEFAULT_SEED, TrainOptions
from tasks.training.slots import DEFAULT_DEVICES, Slot
from tasks.training.task import (
    ensure_gpu_limits,
    finish_training,
    flow_run_id,
    free_slots,
    plan_training,
    record_run,
    run_id_for,
    training_task_for,
)

# ---------------------------------------------------------------- dataset lookup


def locate_dataset(
    windows_root: Path, dataset: str | None, symbol: str | None, interval: str | None
) -> Path:
    """The window file: a path, an id under ``windows/``, else the newest for symbol/interval."""
    if dataset:
        candidate = Path(dataset)
        if candidate.suffix == ".h5" or "/" in dataset or candidate.is_file():
            if not candidate.is_file():
                raise ValueError(f"window file not found: {candidate}")
            return candidate.resolve()
        validate_name(dataset, "dataset id")
        path = windows_root / f"{dataset}.h5"
        if not path.is_file():
            raise ValueError(f"no window file with id {dataset!r} under {windows_root}")
        return path.resolve()
    if not symbol or not interval:
        raise ValueError("give --dataset, or --symbol and --interval to use their newest windows")
    symbol, interval = validate_symbol(symbol), Interval.parse(interval).value
    return newest_window_file(windows_root, symbol, interval)


def newest_window_file(windows_root: Path, symbol: str, interval: str) -> Path:
    """The most recently written window file of (symbol, interval)."""
    import h5py

    found: list[tuple[float, Path]] = []
    for path in sorted(windows_root.glob("*.h5")) if windows_root.is_dir() else []:
        try:
            with h5py.File(path, "r") as f:
                attrs = {k: f.attrs.get(k) for k in ("symbol", "interval")}
        except OSError:
            continue
        if _text(attrs["symbol"]) == symbol and _text(attrs["interval"]) == interval:
            found.append((path.stat().st_mtime, path))
    if not found:
        raise ValueError(
            f"no window file for {symbol} {interval} under {windows_root}; run `cryptoflow prepare`"
        )
    return max(found)[1].resolve()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def dataset_summary(path: Path) -> dict[str, Any]:
    """Protocol, market and window shape of a window file (from its attributes)."""
    import h5py

    keys = ("dataset_id", "protocol", "symbol", "interval", "past", "future")
    with h5py.File(path, "r") as f:
        found = {k: f.attrs[k] for k in keys if k in f.attrs}
    out: dict[str, Any] = {k: _text(v) for k, v in found.items()}
    for k in ("past", "future"):
        if k in out:
            out[k] = int(out[k])
    out.setdefault("dataset_id", path.stem)
    return out


def prepare_training(
    models: list[str] | str,
    epochs: int,
    batch_size: int,
    parallel: int | None,
    devices: str,
    data_dir: str | None,
    dataset: str | None,
    symbol: str | None,
    interval: str | None,
) -> tuple[list[str], Path, list[Slot], DataLayout]:
    """Validate a training request completely before anything is written."""
    names, slots = plan_training(models, epochs, batch_size, parallel, devices)
    layout = DataLayout.at(data_dir)
    path = locate_dataset(layout.windows, dataset, symbol, interval)
    return names, path, slots, layout


@flow(name="train", validate_parameters=True)
def train(
    models: list[str] | str = "all",
    epochs: int = DEFAULT_EPOCHS,
    batch_size: int = DEFAULT_BATCH_SIZE,
    parallel: int | None = None,
    devices: str = DEFAULT_DEVICES,
    dataset: str | None = None,
    symbol: str | None = None,
    interval: str | None = None,
    data_dir: str | None = None,
    run_id: str | None = None,
    seed: int = DEFAULT_SEED,
    patience: int | None = None,
    checkpoints: str = "every",
    progress_bar: bool = False,
    task_runner: str = "process",
    dask_address: str | None = None,
) -> str:
    """Train the zoo on one window file, each model in its own process; returns the run id.

    Args:
        models: "all" or model names (see ``tasks.zoo.MODEL_NAMES``).
        epochs: Epochs per model (numbered from 1).
        batch_size: Batch size (the tutorial: 8).
        parallel: Models at once on CPU (default 1); on GPUs one per GPU.
        devices: auto | cpu | gpu:0,1.
        dataset: Window file path or dataset id under windows/; default: the newest one of
            symbol/interval.
        run_id: Continue (or name) this run; default: a new id.
        seed: Seed of every model.
        patience: Early stopping patience in epochs (empty: off).
        checkpoints: every | best | none.
        progress_bar: Draw a progress bar on the terminal.
        task_runner: process (one local process per model) | dask (a Dask cluster).
        dask_address: Dask scheduler, tcp://host:8786; default: a LocalCluster sized here.
    """
    logger = get_run_logger()
    use_dask = check_runner(task_runner, dask_address)
    names, path, slots, layout = prepare_training(
        models, epochs, batch_size, parallel, devices, data_dir, dataset, symbol, interval
    )
    options = TrainOptions(epochs=epochs, batch_size=batch_size, seed=seed, patience=patience,
                           checkpoints=checkpoints)
    store = RunStore(layout.runs)
    run_id = run_id_for(run_id)
    record_run(store, run_id, {
        **dataset_summary(path), "dataset_path": str(path), "epochs": epochs,
        "batch_size": batch_size, "seed": seed, "devices": [s.name for s in slots],
        "flow_run_id": flow_run_id(),
    }, add_models=names)
    job_options = {"epochs": epochs, "batch_size": batch_size, "seed": seed,
                   "patience": patience, "checkpoints": options.checkpoints.value}
    run_dirs = {name: str(store.model_dir(run_id, name)) for name in names}
    if use_dask:
        results = train_zoo_on_dask(run_id, names, str(path), run_dirs, job_options, slots,
                                    dask_address)
        return finish_training(run_id, names, results)
    ensure_gpu_limits(slots)
    logger.info("run %s: %d model(s) on %s", run_id, len(names), ", ".join(s.name for s in slots))
    free = free_slots(slots)
    with TerminalProgress.on_terminal(progress_bar) as bar:
        futures = [
            training_task_for(run_dirs[name]).submit(
                name, str(path), run_dirs[name], job_options, free, bar
            )
            for name in names
        ]
        wait(futures)
    results = [f.result(raise_on_failure=False) for f in futures]
    return finish_training(run_id, names, results)
