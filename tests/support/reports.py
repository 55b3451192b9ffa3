"""Support: a small, fully scored run evaluation for the report's unit and UI tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tasks.evaluation import EntryKind, EntryScore, Forecast, RunEvaluation
from tasks.metrics import forecast_metrics


def _metrics(offset: float):
    rng = np.random.default_rng(int(offset * 10))
    actual = 4000 + rng.normal(0, 10, (6, 4)).cumsum(axis=1)
    last = actual[:, 0] - 1
    predicted = actual + offset
    return forecast_metrics(
        actual, predicted, last, actual_scaled=actual / 1e4, predicted_scaled=predicted / 1e4
    )


def _evaluation(protocol="honest") -> RunEvaluation:
    hist = pd.DataFrame(
        {"epoch": [1, 2, 3], "loss": [3e-4, 2e-4, 1e-4], "val_loss": [4e-4, 2e-4, 3e-4]}
    )
    entries = [
        EntryScore(
            "cnn2_relu",
            EntryKind.MODEL,
            "ok",
            2,
            3,
            2e-4,
            "/x/epoch-002-0.000200.keras",
            _metrics(5.0),
            _metrics(6.0),
        ),
        EntryScore(
            "gru_tanh_leaky",
            EntryKind.MODEL,
            "ok",
            2,
            3,
            1e-4,
            "/x/epoch-002.keras",
            _metrics(1.0),
            _metrics(2.0),
        ),
        EntryScore("cnn4_leaky", EntryKind.MODEL, "diverged", None, 3),
        EntryScore(
            "persistence",
            EntryKind.BASELINE,
            "ok",
            validation=_metrics(3.0),
            evaluation=_metrics(3.0),
        ),
        EntryScore(
            "lag", EntryKind.BASELINE, "ok", validation=_metrics(4.0), evaluation=_metrics(4.0)
        ),
        EntryScore(
            "linear", EntryKind.BASELINE, "ok", validation=_metrics(3.5), evaluation=_metrics(3.5)
        ),
    ]
    times = 1_500_000_000_000 + (np.arange(6)[:, None] * 4 + np.arange(4)) * 300_000
    return RunEvaluation(
        run_id="20260101T000000Z-abc123",
        protocol=protocol,
        eval_split="test" if protocol == "honest" else "validation",
        meta={
            "run_id": "20260101T000000Z-abc123",
            "protocol": protocol,
            "eval_split": "test" if protocol == "honest" else "validation",
            "dataset_id": "0123456789abcdef0123",
            "candle_fingerprint": "fp-<script>",
            "symbol": "BTC_USDT",
            "interval": "MINUTE_5",
            "past": 16,
            "future": 4,
            "report_flow_run_id": "flow-run-1",
        },
        entries=entries,
        champion="gru_tanh_leaky",
        histories={
            "cnn2_relu": hist,
            "gru_tanh_leaky": hist,
            "cnn4_leaky": hist.assign(val_loss=[4e-4, np.nan, np.nan]),
        },
        champion_forecast=Forecast(
            "gru_tanh_leaky", times, np.full((6, 4), 4000.0), np.full((6, 4), 4001.0)
        ),
    )
