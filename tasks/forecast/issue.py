"""One forecast issue of a market: its current champion (honest protocol) on the newest window,
and persistence for the same target times, as rows for :class:`storage.forecasts.ForecastStore`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from storage.candles import CandleStore
from storage.champions import ChampionRegistry
from storage.errors import BadInputError, CorruptStoreError
from storage.forecasts import cast_forecasts
from storage.layout import DataLayout
from storage.runs import RunStore
from storage.schema import Interval, from_epoch_ms, validate_symbol
from tasks.baselines import Baseline
from tasks.evaluation import predict_target, resolve_dataset_path
from tasks.forecast.window import NewestWindow, candles_needed, newest_window
from tasks.selection import CheckpointMissingError, checkpoint_for_epoch, load_checkpoint
from tasks.windows.reader import open_dataset
from tasks.windows.spec import Protocol, parse_features

#: Live forecasts come from champions chosen under the honest protocol only.
FORECAST_PROTOCOL = Protocol.HONEST
PERSISTENCE = Baseline.PERSISTENCE.value
#: The command that trains, reports and promotes a market's champion.
RETRAIN_COMMAND = "cryptoflow run --symbol {symbol} --interval {interval}"


@dataclass(frozen=True)
class ForecastIssue:
    """The rows of one issue ((1 + 1) * K: champion then persistence) and where they came from."""

    rows: pd.DataFrame
    window: NewestWindow
    champion: dict[str, Any]
    dataset_path: Path
    checkpoint: Path

    @property
    def issued_at(self) -> pd.Timestamp:
        """Open time of the last input candle (UTC)."""
        return from_epoch_ms(self.window.issued_at_ms)


def current_champion(layout: DataLayout, symbol: str, interval: Interval) -> dict[str, Any]:
    """The market's current honest champion; ``BadInputError`` saying how to get one."""
    record = ChampionRegistry(layout.reports).current(
        FORECAST_PROTOCOL.value, symbol, interval.value
    )
    if record is None:
        command = RETRAIN_COMMAND.format(symbol=symbol, interval=interval.value)
        raise BadInputError(
            f"no {FORECAST_PROTOCOL.value} champion for {symbol} {interval.value} under "
            f"{layout.reports}; run the pipeline (`{command}`), which trains, reports and "
            "promotes one"
        )
    return record


def champion_checkpoint(layout: DataLayout, record: dict[str, Any]) -> Path:
    """The champion's ``.keras`` file: the recorded path, else its epoch in the run store;
    ``CorruptStoreError`` when it is gone."""
    recorded = Path(str(record.get("checkpoint") or ""))
    if record.get("checkpoint") and recorded.is_file():
        return recorded
    run_id, model, epoch = str(record["run_id"]), str(record["model"]), record.get("epoch")
    md = RunStore(layout.runs).model(run_id, model)
    try:
        if epoch is None:
            raise CheckpointMissingError("the record names no epoch")
        return checkpoint_for_epoch(md.checkpoints(), int(epoch), md.checkpoint_dir)
    except (CheckpointMissingError, OSError, ValueError) as exc:
        raise CorruptStoreError(
            recorded if record.get("checkpoint") else md.checkpoint_dir,
            f"the champion's checkpoint ({model}, run {run_id}, epoch {epoch}) is missing: {exc}",
            rebuild=RETRAIN_COMMAND.format(symbol=record.get("symbol"),
                                           interval=record.get("interval")),
        ) from None


def issue_forecast(
    data_dir: str | Path | None, symbol: str, interval: str | Interval
) -> ForecastIssue:
    """The champion's and persistence's forecast of the K candles after the newest stored one.

    Loads the market's current honest champion, its window file's spec and scaler, the newest
    candles of the store; builds the window as training did, predicts with the checkpoint
    (``safe_mode``) and inverts to prices. Refuses (``BadInputError``) when there is no champion,
    too few candles or a gap in the newest window; ``CorruptStoreError`` when the champion's
    checkpoint or window file is gone.
    """
    symbol = validate_symbol(symbol)
    iv = Interval.parse(interval)
    layout = DataLayout.at(data_dir)
    record = current_champion(layout, symbol, iv)
    run_info = RunStore(layout.runs).read_run(str(record["run_id"])) or {}
    dataset_path = resolve_dataset_path(
        layout, {**run_info, "dataset_id": record.get("dataset_id") or run_info.get("dataset_id")}
    )
    with open_dataset(str(dataset_path)) as ds:
        past, horizon, target = ds.past, ds.future, ds.target_feature
        features = parse_features(ds.features)
        scaler = ds.scaler
        protocol = Protocol(str(ds.attrs.get("protocol", FORECAST_PROTOCOL.value)))
        dataset_id = str(ds.attrs.get("dataset_id") or record.get("dataset_id"))
    checkpoint = champion_checkpoint(layout, record)
    candles = newest_candles(layout, symbol, iv, candles_needed(past, features))
    window = newest_window(candles, iv, past, features, scaler, protocol)
    model = load_checkpoint(checkpoint)
    scaled = predict_target(model, window.x, target, horizon)  # (1, K)
    predicted = scaler.target_to_price(scaled, target, window.anchors)[0]
    rows = forecast_rows(
        window, iv, {str(record["model"]): predicted, PERSISTENCE: persistence(window, horizon)},
        run_id=str(record["run_id"]),
        epoch=None if record.get("epoch") is None else int(record["epoch"]), dataset_id=dataset_id,
        champion=str(record["model"]),
    )
    return ForecastIssue(rows, window, dict(record), Path(dataset_path), checkpoint)


def newest_candles(layout: DataLayout, symbol: str, interval: Interval, n: int) -> pd.DataFrame:
    """The stored candles of the last ``n`` intervals up to the newest (fewer when some are
    missing: the window then refuses them); ``BadInputError`` when nothing is stored."""
    store = CandleStore(layout.candles)
    last = store.last_open_time(symbol, interval)
    if last is None:
        raise BadInputError(
            f"no {symbol} {interval.value} candles stored under {layout.candles}; "
            "run `cryptoflow ingest` first"
        )
    start = last - pd.Timedelta(milliseconds=(n - 1) * interval.ms)
    return store.load(symbol, interval, start=start, end=last)


def persistence(window: NewestWindow, horizon: int) -> np.ndarray:
    """Persistence's forecast (K,): the last input close, every step."""
    return np.full(horizon, window.last_close, dtype=np.float64)


def forecast_rows(
    window: NewestWindow,
    interval: Interval,
    predictions: dict[str, np.ndarray],
    *,
    run_id: str,
    epoch: int | None,
    dataset_id: str,
    champion: str,
) -> pd.DataFrame:
    """Store rows (len(predictions) * K, 8): per model, steps 1..K of one issue; the champion's
    ``epoch`` on its rows, none on the baselines'."""
    issued = window.issued_at_ms
    frames = []
    for name, prices in predictions.items():
        k = np.arange(1, len(prices) + 1, dtype=np.int64)
        frames.append(pd.DataFrame({
            "model": name,
            "issued_at": pd.to_datetime(np.full(k.size, issued), unit="ms", utc=True),
            "step": k,
            "target_time": pd.to_datetime(issued + k * interval.ms, unit="ms", utc=True),
            "predicted_close": np.asarray(prices, dtype=np.float64),
            "run_id": run_id,
            "epoch": pd.array([epoch if name == champion else None] * k.size, dtype="Int64"),
            "dataset_id": dataset_id,
        }))
    return cast_forecasts(pd.concat(frames, ignore_index=True))
