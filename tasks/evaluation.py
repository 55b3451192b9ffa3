"""Score a training run: pick each model's epoch by val_loss, score models and baselines on the
same windows, choose the champion on validation, then (``honest``) score on the test windows.

Phase 1 sees only the training and validation windows; the champion is fixed there. Phase 2
reads the evaluation windows once: ``test`` under ``honest``; under ``seed`` the tutorial's
"test" score, which is measured on the validation windows (its leak, reproduced and labelled).

Everything is scored in price units (under the ``window`` scaler each window is inverted with its
own last input close); MASE is scaled by persistence's MAE on the training windows; on the
evaluation windows each entry gets a block-bootstrap skill interval and a Diebold–Mariano test
against persistence, and the metadata the share of inputs outside the training range.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from storage.errors import BadInputError, CorruptStoreError
from storage.layout import DataLayout
from storage.runs import RunStore, validate_name
from tasks.baselines import Baseline, baseline_forecast, fit_linear
from tasks.metrics import (
    ForecastMetrics,
    finite_or_none,
    forecast_metrics,
    out_of_range_share,
    persistence_mae,
    target_channel,
    window_mse,
)
from tasks.selection import (
    EpochChoice,
    ModelStatus,
    choose_best_epoch,
    choose_champion,
    load_best_checkpoint,
    load_checkpoint,
)
from tasks.significance import versus_persistence

logger = logging.getLogger(__name__)
NO_CHECKPOINT = ModelStatus.NO_CHECKPOINT.value
PREDICT_BATCH = 2048
#: Evaluation windows kept for the actual-vs-predicted figure (its "last part").
FIGURE_TAIL_WINDOWS = 2048


class EntryKind:
    """Leaderboard entry kinds."""

    MODEL = "model"
    BASELINE = "baseline"


@dataclass
class EntryScore:
    """One leaderboard entry: a zoo model at its chosen epoch, or a baseline."""

    name: str
    kind: str
    status: str
    best_epoch: int | None = None
    n_epochs: int | None = None
    history_val_loss: float | None = None
    checkpoint: str | None = None
    validation: ForecastMetrics | None = None
    evaluation: ForecastMetrics | None = None
    skipped: list[str] = field(default_factory=list)  # checkpoints passed over (did not load)
    # vs persistence on the evaluation windows: skill_lo, skill_hi (95 %), dm_stat, dm_p
    significance: dict[str, float | None] | None = None


@dataclass
class Forecast:
    """Forecasts of one entry on the last evaluation windows, price units: output times
    ``(m, K)`` epoch ms, actual and predicted ``(m, K)``; input times and closes ``(m, N)``."""

    name: str
    output_times: np.ndarray
    actual: np.ndarray
    predicted: np.ndarray
    input_times: np.ndarray | None = None
    inputs: np.ndarray | None = None


@dataclass
class RunEvaluation:
    """Everything the report shows about one run (small, apart from ``champion_forecast``)."""

    run_id: str
    protocol: str
    eval_split: str
    meta: dict[str, Any]
    entries: list[EntryScore]
    champion: str | None
    histories: dict[str, pd.DataFrame] = field(default_factory=dict)
    champion_forecast: Forecast | None = None

    def entry(self, name: str) -> EntryScore:
        """The entry called ``name``."""
        for e in self.entries:
            if e.name == name:
                return e
        raise KeyError(name)


def resolve_run(store: RunStore, run_id: str | None) -> str:
    """``run_id`` if it exists, else the latest run when None; ``BadInputError`` otherwise."""
    if run_id is None or run_id == "":
        latest = store.latest_run()
        if latest is None:
            unstarted = store.runs()
            if unstarted:
                raise BadInputError(
                    f"no run under {store.root} has recorded an epoch yet (newest: "
                    f"{unstarted[-1]}); train the zoo first or name a run"
                )
            raise BadInputError(f"no training runs under {store.root}; train the zoo first")
        return latest
    validate_name(run_id, "run id")
    if store.read_run(run_id) is None:
        known = store.runs()[-5:]
        hint = f"; recent runs: {', '.join(known)}" if known else "; there are no runs"
        raise BadInputError(f"unknown run {run_id!r} under {store.root}{hint}")
    return run_id


def resolve_dataset_path(layout: DataLayout, info: dict[str, Any]) -> Path:
    """The run's window file: ``dataset_path`` (relative to the data dir) or by ``dataset_id``."""
    raw = info.get("dataset_path")
    if raw:
        path = Path(raw)
        if not path.is_absolute():
            path = layout.root / path
        if path.is_file():
            return path
    ds_id = info.get("dataset_id")
    if ds_id:
        from storage.windows import window_path

        path = window_path(layout.windows, str(ds_id))
        if path.is_file():
            return path
    raise CorruptStoreError(
        raw or ds_id or layout.windows,
        f"the run's window file is missing (dataset_path={raw!r}, dataset_id={ds_id!r})",
        rebuild="cryptoflow prepare ...",
    )


@dataclass
class _Split:
    """Scaled windows of one split and their target views."""

    x: np.ndarray  # (n, N, F)
    actual: np.ndarray  # (n, K) scaled target
    last: np.ndarray  # (n,) scaled last input close
    output_times: np.ndarray  # (n, K) epoch ms
    input_times: np.ndarray  # (n, N) epoch ms
    anchors: np.ndarray | None = None  # (n,) last input close in price units (window scaler)

    def tail(self, n: int) -> _Split:
        """The last ``n`` windows."""
        keep = slice(max(0, len(self.x) - n), None)
        return _Split(
            self.x[keep], self.actual[keep], self.last[keep], self.output_times[keep],
            self.input_times[keep], None if self.anchors is None else self.anchors[keep],
        )


def _load_split(ds: Any, split: str, target: int) -> _Split:
    x, y = ds.split_arrays(split)
    in_times, out_times = ds.split_times(split)
    return _Split(
        x=np.asarray(x),
        actual=target_channel(y, target),
        last=np.asarray(x[:, -1, target], dtype=np.float64),
        output_times=np.asarray(out_times, dtype=np.int64),
        input_times=np.asarray(in_times, dtype=np.int64),
        anchors=ds.split_anchors(split),
    )


PriceFn = Callable[[np.ndarray, "_Split"], np.ndarray]
ScoreFn = Callable[["_Split", np.ndarray, float | None], ForecastMetrics]


def _scorer(ds: Any, target: int) -> tuple[PriceFn, ScoreFn]:
    scaler = ds.scaler

    def to_price(values: np.ndarray, split: _Split) -> np.ndarray:
        return scaler.target_to_price(values, target, split.anchors)

    def score(
        split: _Split, predicted_scaled: np.ndarray, mase_scale: float | None = None
    ) -> ForecastMetrics:
        return forecast_metrics(
            to_price(split.actual, split),
            to_price(predicted_scaled, split),
            to_price(split.last, split),
            actual_scaled=split.actual,
            predicted_scaled=predicted_scaled,
            mase_scale=mase_scale,
        )

    return to_price, score


@contextlib.contextmanager
def _quiet_tensorflow() -> Iterator[None]:
    """Mute TensorFlow's Python warnings (one retracing note per loaded model) for a moment."""
    tf_logger = logging.getLogger("tensorflow")
    level = tf_logger.level
    tf_logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        tf_logger.setLevel(level)


def predict_target(model: Any, x: np.ndarray, target: int, horizon: int) -> np.ndarray:
    """A Keras model's forecast of the target: ``(n, N, F)`` -> ``(n, K)`` scaled."""
    with _quiet_tensorflow():
        raw = model.predict(x, batch_size=PREDICT_BATCH, verbose=0)
    return target_channel(raw, target, horizon)


def _choices(store: RunStore, run_id: str, models: list[str]) -> dict[str, EpochChoice]:
    return {m: choose_best_epoch(m, store.read_history(run_id, m)) for m in models}


def evaluate_run(data_dir: str | Path | None, run_id: str | None = None) -> RunEvaluation:
    """Select, score and rank every model of a run against the baselines (see module doc)."""
    from tasks.windows import open_dataset

    layout = DataLayout.at(data_dir)
    store = RunStore(layout.runs)
    run_id = resolve_run(store, run_id)
    info = store.read_run(run_id) or {}
    models = [str(m) for m in (info.get("models") or store.models(run_id))]
    if not models:
        raise BadInputError(f"run {run_id!r} has no models")
    dataset_path = resolve_dataset_path(layout, info)
    ds = open_dataset(str(dataset_path))
    attrs = ds.attrs
    protocol = str(attrs.get("protocol", info.get("protocol", "honest")))
    target = ds.target_feature
    horizon = ds.future
    eval_split = "test" if protocol == "honest" else "validation"
    to_price, score = _scorer(ds, target)

    histories = {m: store.read_history(run_id, m) for m in models}
    choices = _choices(store, run_id, models)
    if all(c.status is ModelStatus.NO_HISTORY for c in choices.values()):
        raise BadInputError(f"run {run_id!r} is empty: no model recorded a single epoch")

    # ---- phase 1: training and validation windows only
    train = _load_split(ds, "train", target)
    if len(train.x) == 0:
        raise BadInputError(f"the window file {dataset_path} has no training windows")
    linear = fit_linear(train.x, train.actual, target)
    # MASE scale: persistence's in-sample MAE on the training windows, price units
    mase_scale = persistence_mae(to_price(train.actual, train), to_price(train.last, train))
    train_range = np.array([np.nanmin(train.x[:, :, target]), np.nanmax(train.x[:, :, target])])
    del train
    val = _load_split(ds, "validation", target)
    if len(val.x) == 0:
        raise BadInputError(f"the window file {dataset_path} has no validation windows")

    entries: list[EntryScore] = []
    checkpoints: dict[str, Path] = {}
    val_predictions: dict[str, np.ndarray] = {}
    for m in models:
        c = choices[m]
        e = EntryScore(m, EntryKind.MODEL, c.status.value, c.best_epoch, c.n_epochs, c.val_loss)
        if c.eligible and c.best_epoch is not None:
            md = store.model(run_id, m)
            loaded = load_best_checkpoint(c, histories[m], md.checkpoints(), md.checkpoint_dir)
            e.skipped = list(loaded.skipped)
            for line in loaded.skipped:
                logger.warning("%s: checkpoint skipped, %s", m, line)
            if loaded.epoch is None:
                e.status, e.best_epoch, e.history_val_loss = NO_CHECKPOINT, None, None
            else:
                e.best_epoch, e.history_val_loss = loaded.epoch, loaded.val_loss
                checkpoints[m] = loaded.path
                e.checkpoint = str(loaded.path)
                val_predictions[m] = predict_target(loaded.model, val.x, target, horizon)
                e.validation = score(val, val_predictions[m], mase_scale)
        entries.append(e)
    for b in Baseline:
        e = EntryScore(b.value, EntryKind.BASELINE, ModelStatus.OK.value)
        val_predictions[b.value] = baseline_forecast(b, linear, val.x, target, horizon)
        e.validation = score(val, val_predictions[b.value], mase_scale)
        entries.append(e)

    champion = choose_champion(
        {
            e.name: e.validation.mse_scaled
            for e in entries
            if e.kind == EntryKind.MODEL and e.validation is not None
        }
    )

    # ---- phase 2: the evaluation windows, read once, after the champion is fixed
    if eval_split == "validation":  # seed: the tutorial scored "test" on the validation windows
        ev, eval_predictions = val, val_predictions
    else:
        ev = _load_split(ds, eval_split, target)
        if len(ev.x) == 0:
            raise BadInputError(f"the window file {dataset_path} has no {eval_split} windows")
        eval_predictions = {}
        for e in entries:
            if e.validation is None:
                continue
            if e.kind == EntryKind.MODEL:
                net = load_checkpoint(checkpoints[e.name])
                eval_predictions[e.name] = predict_target(net, ev.x, target, horizon)
            else:
                eval_predictions[e.name] = baseline_forecast(e.name, linear, ev.x, target, horizon)
    ev_actual = to_price(ev.actual, ev)
    persistence_loss = window_mse(ev_actual, np.repeat(to_price(ev.last, ev)[:, None], horizon, 1))
    for e in entries:
        if e.name in eval_predictions:
            e.evaluation = score(ev, eval_predictions[e.name], mase_scale)
            loss = window_mse(ev_actual, to_price(eval_predictions[e.name], ev))
            e.significance = versus_persistence(
                loss, persistence_loss, horizon, is_persistence=e.name == Baseline.PERSISTENCE
            )
    champion_forecast = None
    if champion is not None:
        shown = ev.tail(FIGURE_TAIL_WINDOWS)  # what the figure shows
        champion_forecast = Forecast(
            name=champion,
            output_times=shown.output_times,
            actual=to_price(shown.actual, shown),
            predicted=to_price(eval_predictions[champion][-len(shown.x):], shown),
            input_times=shown.input_times,
            inputs=to_price(shown.x[:, :, target], shown),
        )

    meta = {
        "run_id": run_id,
        "protocol": protocol,
        "eval_split": eval_split,
        "dataset_id": attrs.get("dataset_id", info.get("dataset_id")),
        "dataset_path": str(dataset_path),
        "candle_fingerprint": attrs.get("candle_fingerprint"),
        "symbol": attrs.get("symbol"),
        "interval": attrs.get("interval"),
        "past": ds.past,
        "future": horizon,
        "features": ds.features,
        "target_feature": ds.features[target] if ds.features else target,
        "code_version": attrs.get("code_version"),
        "scaler": (attrs.get("spec") or {}).get("scaler", ds.scaler.kind.value),
        "folds": int((attrs.get("spec") or {}).get("folds", 1)),
        "fold": int((attrs.get("spec") or {}).get("fold", 0)),
        "n_validation": int(len(val.x)),
        "n_eval": int(len(ev.x)),
        # share of evaluation inputs (target, scaled) outside the training inputs' range
        "out_of_range_share": finite_or_none(out_of_range_share(train_range, ev.x[:, :, target])),
        "train_flow_run_id": info.get("flow_run_id"),
        "run_created": info.get("created"),
        "models": models,
    }
    ds.close()
    return RunEvaluation(
        run_id=run_id,
        protocol=protocol,
        eval_split=eval_split,
        meta=meta,
        entries=entries,
        champion=champion,
        histories=histories,
        champion_forecast=champion_forecast,
    )


@task(name="evaluate-run", cache_policy=NO_CACHE)
def evaluate_run_task(data_dir: str, run_id: str | None) -> Any:
    """Select each model's epoch, score models and baselines, choose the champion."""
    return evaluate_run(data_dir, run_id)


def score_on_split(
    ds: Any, split: str, forecast: Callable[[np.ndarray], np.ndarray]
) -> ForecastMetrics:
    """Score a forecaster on one split of an open window file exactly as the leaderboard
    scores its entries: ``forecast`` maps the split's scaled inputs ``(n, N, F)`` to scaled
    forecasts of the target ``(n, K)``."""
    target = ds.target_feature
    _, score = _scorer(ds, target)
    windows = _load_split(ds, split, target)
    if len(windows.x) == 0:
        raise BadInputError(f"the window file {ds.path} has no {split} windows")
    return score(windows, forecast(windows.x))
