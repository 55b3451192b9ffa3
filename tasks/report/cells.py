"""How a leaderboard value is written in a table cell, and how the evaluation windows are named."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: Columns shown as losses (scaled MSE), as skill, as a share, as MAPE.
_LOSS_KEYS = frozenset({"val_loss", "history_val_loss", "test_mse_scaled", "median_val_mse_scaled"})
_SKILL_KEYS = frozenset({"skill", "val_skill"})


def format_cell(key: str, value: Any) -> str:
    """The text of column ``key``'s ``value`` in an HTML or markdown table."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "★" if value else ""
    if isinstance(value, float):
        if key in _LOSS_KEYS:
            return f"{value:.3g}" if value < 1e-3 else f"{value:.5f}"
        if key in _SKILL_KEYS:
            return f"{value:+.3f}"
        if key == "direction_accuracy":
            return f"{value:.1%}"
        if key == "test_mape":
            return f"{value:.3f}"
        return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.2f}"
    return str(value)


def split_label(meta: Mapping[str, Any]) -> str:
    """Human label of the evaluation windows of a run's metadata, flagging the seed leak."""
    if meta.get("eval_split") == "validation":
        return "validation (seed protocol: the tutorial's 'test' = validation, a leak)"
    return "test"
