"""The ``train`` flow: the model zoo trained in parallel, one Prefect task run (and one process)
per model, checkpoints every epoch in ``runs/<run-id>/<model>/``.

Concurrency (``tasks.training.task``): one slot per GPU, or ``parallel`` CPU slots sharing the
cores; each model's task waits for a free slot, and on a GPU holds its Prefect concurrency limit.
With ``task_runner="dask"`` each model is one task on a Dask cluster (``flows.runners``).
"""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.futures import wait

from flows.params import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_CHECKPOINTS,
    DEFAULT_DEVICES,
    DEFAULT_EPOCHS,
    DEFAULT_MODELS,
    DEFAULT_PARALLEL,
    DEFAULT_PATIENCE,
    DEFAULT_SEED,
    DEFAULT_TASK_RUNNER,
    Backend,
    BatchSize,
    Checkpoints,
    DaskAddress,
    DataDir,
    Dataset,
    Devices,
    Epochs,
    IntervalName,
    Models,
    ModelsPerGpu,
    Parallel,
    Patience,
    RunId,
    Seed,
    Symbol,
    TaskRunner,
)
from flows.runners import check_runner, train_zoo_on_dask
from storage.runs import RunStore
from storage.windows.store import WindowStore
from tasks.progress import TerminalProgress
from tasks.training.backends import resolve_backend
from tasks.training.task import (
    accepted_run,
    ensure_gpu_limits,
    finish_training,
    flow_run_id,
    free_slots,
    prepare_training,
    run_id_for,
    training_task_for,
)


@flow(name="train", validate_parameters=True)
def train(
    models: Models = DEFAULT_MODELS,
    epochs: Epochs = DEFAULT_EPOCHS,
    batch_size: BatchSize = DEFAULT_BATCH_SIZE,
    parallel: Parallel = DEFAULT_PARALLEL,
    devices: Devices = DEFAULT_DEVICES,
    dataset: Dataset = None,
    symbol: Symbol | None = None,
    interval: IntervalName | None = None,
    data_dir: DataDir = None,
    run_id: RunId = None,
    seed: Seed = DEFAULT_SEED,
    patience: Patience = DEFAULT_PATIENCE,
    checkpoints: Checkpoints = DEFAULT_CHECKPOINTS,
    progress_bar: bool = False,
    task_runner: TaskRunner = DEFAULT_TASK_RUNNER,
    dask_address: DaskAddress = None,
    backend: Backend = None,
    models_per_gpu: ModelsPerGpu = None,
) -> str:
    """Train the zoo on one window file, each model in its own process; returns the run id.

    Args:
        models: Models of the zoo to train ("all" or names).
        epochs: Maximum epochs per model (the tutorial: 100).
        batch_size: Training batch size (the tutorial: 8).
        parallel: Models trained at once on CPU, each in its own process; on GPUs one per GPU.
        devices: Where to train: auto, cpu or gpu:0,1.
        dataset: Window file path or dataset id under windows/; empty: the newest window file
            of symbol/interval.
        symbol: Market whose newest window file to train on, when dataset is empty.
        interval: Candle interval of that window file, when dataset is empty.
        data_dir: Data directory holding the stores (default $CRYPTOFLOW_DATA_DIR or ./data).
        run_id: Continue (or name) this run; empty: a new run id.
        seed: Random seed of every model (same seed, same history on CPU).
        patience: Early stopping after this many epochs without a better val_loss (empty: off).
        checkpoints: Checkpoints to keep: every epoch's, the best one's, or none.
        progress_bar: Draw a progress bar on the terminal.
        task_runner: Where the zoo trains: `process` (one local process per model) or `dask`.
        dask_address: Dask scheduler (tcp://host:8786); empty with `dask`: a local cluster.
        backend: Keras backend (tensorflow, jax or torch); empty: $CRYPTOFLOW_BACKEND, else
            $KERAS_BACKEND, else tensorflow.
        models_per_gpu: Models trained at once on each GPU; empty: from its free memory.
    """
    logger = get_run_logger()
    use_dask = check_runner(task_runner, dask_address)
    names, path, slots, layout = prepare_training(
        models, epochs, batch_size, parallel, devices, data_dir, dataset, symbol, interval,
        models_per_gpu=models_per_gpu, backend=backend,
    )
    store = RunStore(layout.runs)
    run_id = run_id_for(run_id)
    request = {**WindowStore(layout.windows).summary(path), "dataset_path": str(path),
               "epochs": epochs, "batch_size": batch_size, "seed": seed,
               "checkpoints": checkpoints.value, "devices": [s.name for s in slots],
               "flow_run_id": flow_run_id()}
    job_options = {"epochs": epochs, "batch_size": batch_size, "seed": seed,
                   "patience": patience, "checkpoints": checkpoints.value,
                   "backend": resolve_backend(backend)}
    run_dirs = {name: str(store.model_dir(run_id, name)) for name in names}
    # Checked before anything is written; the run folder stays locked until training ends.
    with accepted_run(store, run_id, request, names):
        if use_dask:
            results = train_zoo_on_dask(run_id, names, str(path), run_dirs, job_options, slots,
                                        dask_address)
            return finish_training(run_id, names, results)
        ensure_gpu_limits(slots)
        logger.info("run %s: %d model(s) on %s", run_id, len(names),
                    ", ".join(s.name for s in slots))
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
