"""The leaderboard: one row per model and baseline, its columns, and its CSV and JSON texts."""

from __future__ import annotations

import io
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from tasks.evaluation import EntryScore, RunEvaluation
from tasks.metrics import finite_or_none
from tasks.report.cells import SKILL_INTERVAL
from tasks.report.diagnosis import verdict
from tasks.report.labels import describe_model

#: Leaderboard columns: key -> header. The first five are the tutorial's.
LEADERBOARD_COLUMNS: dict[str, str] = {
    "model": "Model",
    "layers": "#Layers",
    "activation": "Activation",
    "val_loss": "Validation Loss",
    "test_mse": "Test Loss (scale inverted)",
    "test_rmse": "Test RMSE",
    "test_mae": "Test MAE",
    "test_mape": "Test MAPE %",
    "test_mase": "Test MASE",
    "direction_accuracy": "Direction accuracy",
    "skill": "Skill vs persistence",
    "skill_lo": "Skill 95% low",
    "skill_hi": "Skill 95% high",
    "dm_stat": "DM statistic vs persistence",
    "dm_p": "DM p-value",
    "verdict": "Verdict",
    "best_epoch": "Best epoch",
    "epochs": "Epochs",
    "status": "Status",
    "kind": "Kind",
    "family": "Family",
    "champion": "Champion",
    "history_val_loss": "val_loss (history)",
    "checkpoint": "Checkpoint",
}

#: The columns the HTML and markdown tables show, in order.
TABLE_KEYS: tuple[str, ...] = (
    "model",
    "layers",
    "activation",
    "val_loss",
    "test_mse",
    "test_rmse",
    "test_mae",
    "test_mape",
    "test_mase",
    "direction_accuracy",
    "skill",
    SKILL_INTERVAL,
    "best_epoch",
    "status",
    "verdict",
)
#: Headers of the HTML and markdown tables: the leaderboard's plus the table-only cells.
TABLE_HEADERS: dict[str, str] = {**LEADERBOARD_COLUMNS, SKILL_INTERVAL: "Skill 95% interval"}


def leaderboard_rows(evaluation: RunEvaluation) -> list[dict[str, Any]]:
    """One JSON-safe row per model and baseline, best validation loss first, failures last."""
    share = evaluation.meta.get("out_of_range_share")
    rows = [_row(e, evaluation.champion) for e in evaluation.entries]
    for r in rows:
        r["verdict"] = verdict(r, share)
    ok = [r for r in rows if r["val_loss"] is not None]
    rest = [r for r in rows if r["val_loss"] is None]
    return sorted(ok, key=lambda r: r["val_loss"]) + rest


def _row(e: EntryScore, champion: str | None) -> dict[str, Any]:
    family, layers, activation = describe_model(e.name)
    v, t = e.validation, e.evaluation
    sig = e.significance or {}
    num = finite_or_none
    return {
        "model": e.name,
        "kind": e.kind,
        "family": family,
        "layers": layers,
        "activation": activation,
        "status": e.status,
        "champion": e.name == champion,
        "best_epoch": e.best_epoch,
        "epochs": e.n_epochs,
        "history_val_loss": num(e.history_val_loss),
        "val_loss": num(v.mse_scaled) if v else None,
        "val_mse": num(v.mse) if v else None,
        "val_skill": num(v.skill) if v else None,
        "val_mase": num(v.mase) if v else None,
        "test_mse_scaled": num(t.mse_scaled) if t else None,
        "test_mse": num(t.mse) if t else None,
        "test_rmse": num(t.rmse) if t else None,
        "test_mae": num(t.mae) if t else None,
        "test_mape": num(t.mape) if t else None,
        "test_mase": num(t.mase) if t else None,
        "direction_accuracy": num(t.direction_accuracy) if t else None,
        "skill": num(t.skill) if t else None,
        "skill_lo": num(sig.get("skill_lo")),
        "skill_hi": num(sig.get("skill_hi")),
        "dm_stat": num(sig.get("dm_stat")),
        "dm_p": num(sig.get("dm_p")),
        "rmse_by_step": [num(math.sqrt(x)) for x in t.mse_by_step] if t else None,
        "checkpoint": e.checkpoint,
        "skipped_checkpoints": list(e.skipped),
    }


def scalar_columns(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The rows without their list-valued columns (``rmse_by_step``), for flat tables."""
    return [{k: v for k, v in r.items() if not isinstance(v, list)} for r in rows]


def leaderboard_frame(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """The leaderboard as a DataFrame (list columns dropped), tutorial columns first."""
    df = pd.DataFrame(scalar_columns(rows))
    for col in ("layers", "best_epoch", "epochs"):
        if col in df.columns:
            df[col] = df[col].astype("Int64")  # whole numbers, blank when missing
    first = [c for c in LEADERBOARD_COLUMNS if c in df.columns]
    return df[first + [c for c in df.columns if c not in first]]


def leaderboard_csv(rows: Sequence[Mapping[str, Any]]) -> str:
    """CSV text of the leaderboard."""
    buf = io.StringIO()
    leaderboard_frame(rows).to_csv(buf, index=False)
    return buf.getvalue()


def leaderboard_json(rows: Sequence[Mapping[str, Any]]) -> str:
    """JSON text: a list of rows (NaN written as null)."""
    return json.dumps(list(rows), indent=2, allow_nan=False) + "\n"
