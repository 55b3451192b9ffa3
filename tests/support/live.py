"""Support: a market with real candles, a recorded champion and synthetic forecast rows, for
the live-score tests (no Keras: scoring reads only the stores and the registry)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from storage.candles import CandleStore
from storage.champions import ChampionRegistry
from storage.forecasts import ForecastStore
from storage.layout import DataLayout

SYMBOL, INTERVAL, K = "BTC_USDT", "MINUTE_5", 4
STEP_MS = 300_000


def record_champion(data_dir: Path, run_id: str, model: str = "cnn2_relu", epoch: int = 3):
    """Record ``run_id``'s ``model`` at ``epoch`` as the honest champion of the market."""
    return ChampionRegistry(DataLayout.at(data_dir).reports).record({
        "run_id": run_id, "protocol": "honest", "symbol": SYMBOL, "interval": INTERVAL,
        "model": model, "epoch": epoch, "checkpoint": "unused.keras", "dataset_id": "d" * 20,
        "candle_fingerprint": "test", "metrics": {}, "flow_run_id": None,
    })


def store_candles(data_dir: Path, candles: pd.DataFrame) -> None:
    CandleStore(DataLayout.at(data_dir).candles).append(SYMBOL, INTERVAL, candles)


def issue_rows(
    candles: pd.DataFrame, at: range | list[int], run_id: str, model: str = "cnn2_relu",
    epoch: int = 3, bias: float = 0.001, k: int = K,
) -> pd.DataFrame:
    """Forecast rows of issues at candle positions ``at`` (issued at that candle's open):
    the champion predicts close * (1 + bias + 0.0001 * step), persistence the close."""
    opens = candles["open_time"].astype("int64").to_numpy()
    closes = candles["close"].to_numpy(dtype=np.float64)
    frames = []
    for i in at:
        steps = np.arange(1, k + 1)
        for name, ep, pred in ((model, epoch, closes[i] * (1 + bias + 1e-4 * steps)),
                               ("persistence", None, np.full(k, closes[i]))):
            frames.append(pd.DataFrame({
                "model": name,
                "issued_at": pd.to_datetime(np.full(k, opens[i]), unit="ms", utc=True),
                "step": steps,
                "target_time": pd.to_datetime(opens[i] + steps * STEP_MS, unit="ms", utc=True),
                "predicted_close": pred,
                "run_id": run_id,
                "epoch": pd.array([ep] * k, dtype="Int64"),
                "dataset_id": "d" * 20,
            }))
    return pd.concat(frames, ignore_index=True)


def store_forecasts(data_dir: Path, rows: pd.DataFrame) -> None:
    ForecastStore(DataLayout.at(data_dir).forecasts).write(SYMBOL, INTERVAL, rows)


def score_files(data_dir: Path) -> dict[str, bytes]:
    """Every file of the score store, path -> bytes."""
    root = DataLayout.at(data_dir).scores
    return {str(p): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
