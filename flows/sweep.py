"""The ``sweep`` flow: the tutorial's L1/L2 regularization experiment, in parallel like the zoo.

For a base model (default ``lstm_tanh_leaky``): target in {bias, kernel, recurrent, activity} x
kind in {l1, l2} x strength in {0, 0.1, 0.01, 0.001, 0.0001} x repeats (the tutorial: 30 repeats
of 30 epochs). One Prefect task run (and one worker process) per setting trains its repeats;
repeat r uses seed ``seed + r`` in every setting, so settings are compared on paired inits.
Strength 0 is the same unregularized model for every target and kind: it is trained once per
repeat and reported under each (target, kind), as the tutorial's ``l1(0)`` column.

Writes the tidy table ``runs/<run-id>/sweep.csv``: target, kind, strength, repeat,
val_mse_scaled, val_mse_price (validation MSE of the target feature, scaled and in price units
through the window file's scaler), plus best_val_loss.
"""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.futures import wait

from flows.params import (
    DEFAULT_DEVICES,
    DEFAULT_PARALLEL,
    DEFAULT_SEED,
    DEFAULT_SWEEP_MODEL,
    TUTORIAL_BATCH_SIZE,
    TUTORIAL_SWEEP_EPOCHS,
    TUTORIAL_SWEEP_REPEATS,
    BatchSize,
    DataDir,
    Dataset,
    Devices,
    Epochs,
    IntervalName,
    Kinds,
    Parallel,
    RecurrentModel,
    Repeats,
    RunId,
    Seed,
    Strengths,
    Symbol,
    Targets,
)
from storage.runs import RunStore
from storage.windows.store import WindowStore
from tasks.progress import TerminalProgress
from tasks.training.sweep import check_sweep_model, sweep_axes, sweep_jobs, sweep_settings
from tasks.training.task import (
    accepted_run,
    ensure_gpu_limits,
    free_slots,
    prepare_training,
    run_id_for,
    sweep_setting_task,
    write_sweep_table,
)


@flow(name="sweep", validate_parameters=True)
def sweep(
    model: RecurrentModel = DEFAULT_SWEEP_MODEL,
    targets: Targets = None,
    kinds: Kinds = None,
    strengths: Strengths = None,
    repeats: Repeats = TUTORIAL_SWEEP_REPEATS,
    epochs: Epochs = TUTORIAL_SWEEP_EPOCHS,
    batch_size: BatchSize = TUTORIAL_BATCH_SIZE,
    parallel: Parallel = DEFAULT_PARALLEL,
    devices: Devices = DEFAULT_DEVICES,
    dataset: Dataset = None,
    symbol: Symbol | None = None,
    interval: IntervalName | None = None,
    data_dir: DataDir = None,
    run_id: RunId = None,
    seed: Seed = DEFAULT_SEED,
    progress_bar: bool = False,
) -> str:
    """Run the regularization sweep; returns the path of ``runs/<run-id>/sweep.csv``.

    Args:
        model: Base model (a recurrent zoo model).
        targets: Regularized parts: bias, kernel, recurrent, activity (default all).
        kinds: Penalty kinds: l1, l2 (default both).
        strengths: Penalty strengths (default 0, 0.1, 0.01, 0.001, 0.0001).
        repeats: Trainings per setting (the tutorial: 30).
        epochs: Epochs per training (the tutorial: 30).
        batch_size: Training batch size (the tutorial: 8).
        parallel: Settings trained at once on CPU, each in its own process; on GPUs one per GPU.
        devices: Where to train: auto, cpu or gpu:0,1.
        dataset: Window file path or dataset id under windows/; empty: the newest window file
            of symbol/interval.
        symbol: Market whose newest window file to train on, when dataset is empty.
        interval: Candle interval of that window file, when dataset is empty.
        data_dir: Data directory holding the stores (default $CRYPTOFLOW_DATA_DIR or ./data).
        run_id: Continue (or name) this run; empty: a new run id.
        seed: Random seed; repeat r uses seed + r in every setting.
        progress_bar: Draw a progress bar on the terminal.
    """
    logger = get_run_logger()
    check_sweep_model(model, repeats)
    targets, kinds = sweep_axes(targets, kinds)
    settings = sweep_settings(targets, kinds, strengths)
    _, path, slots, layout = prepare_training(
        model, epochs, batch_size, parallel, devices, data_dir, dataset, symbol, interval,
        jobs=len(settings),
    )
    store = RunStore(layout.runs)
    run_id = run_id_for(run_id)
    request = {**WindowStore(layout.windows).summary(path), "kind": "sweep",
               "dataset_path": str(path), "epochs": epochs, "batch_size": batch_size,
               "seed": seed, "repeats": repeats, "targets": targets, "kinds": kinds,
               "strengths": sorted({s for _, _, s in settings}),
               "devices": [s.name for s in slots]}
    with accepted_run(store, run_id, request, [model]):
        ensure_gpu_limits(slots)
        free = free_slots(slots)
        jobs = sweep_jobs(settings, store.run_dir(run_id) / "sweep", path, model, repeats,
                          epochs, batch_size, seed)
        logger.info("sweep %s: %d settings x %d repeats of %s", run_id, len(settings), repeats,
                    model)
        with TerminalProgress.on_terminal(progress_bar) as bar:
            futures = [sweep_setting_task.submit(name, job, free, bar)
                       for name, job in jobs.items()]
            wait(futures)
        out = write_sweep_table(store, run_id, [f.result() for f in futures], targets, kinds)
    logger.info("sweep table: %s", out)
    return out
