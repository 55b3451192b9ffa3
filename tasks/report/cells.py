"""How a leaderboard value is written in a table cell, and how the evaluation windows are named."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

#: Columns shown as losses (scaled MSE), as skill, as a share, as MAPE.
_LOSS_KEYS = frozenset({"val_loss", "history_val_loss", "test_mse_scaled", "median_val_mse_scaled"})
_SKILL_KEYS = frozenset({"skill", "val_skill", "skill_lo", "skill_hi"})
_MASE_KEYS = frozenset({"test_mase", "val_mase"})
#: A table-only column: the 95 % skill interval, from a row's ``skill_lo`` and ``skill_hi``.
SKILL_INTERVAL = "skill_interval"
#: Columns whose missing value in a row scored on the evaluation windows means "undefined"
#: (persistence never predicts a move; a scale of 0), shown "n/a" rather than "not scored".
_UNDEFINED_WHEN_SCORED = frozenset({"direction_accuracy", "skill", "test_mase", SKILL_INTERVAL})


def format_cell(key: str, value: Any) -> str:
    """The text of column ``key``'s ``value`` in an HTML or markdown table (NaN: "n/a")."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "★" if value else ""
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        if key in _LOSS_KEYS:
            return f"{value:.3g}" if value < 1e-3 else f"{value:.5f}"
        if key in _SKILL_KEYS:
            return f"{value:+.3f}"
        if key == "direction_accuracy":
            return f"{value:.1%}"
        if key == "test_mape" or key in _MASE_KEYS:
            return f"{value:.3f}"
        return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.2f}"
    return str(value)


def table_cell(key: str, row: Mapping[str, Any]) -> str:
    """The text of column ``key`` of a leaderboard ``row``: :func:`format_cell`, plus the skill
    interval cell ``[lo, hi]`` and "n/a" where an entry scored on the evaluation windows has
    no value because the metric is undefined for it (persistence's direction accuracy)."""
    if key == SKILL_INTERVAL:
        lo, hi = row.get("skill_lo"), row.get("skill_hi")
        value = None if lo is None or hi is None else f"[{lo:+.3f}, {hi:+.3f}]"
    else:
        value = row.get(key)
    if value is None and key in _UNDEFINED_WHEN_SCORED and row.get("test_mse") is not None:
        return "n/a"
    return format_cell(key, value)


def skill_summary(row: Mapping[str, Any]) -> str:
    """A row's skill vs persistence and, when there is one, its 95 % interval."""
    text = format_cell("skill", row.get("skill"))
    if row.get("skill_lo") is None or row.get("skill_hi") is None:
        return text
    return f"{text} (95% interval {table_cell(SKILL_INTERVAL, row)})"


def split_label(meta: Mapping[str, Any]) -> str:
    """Human label of the evaluation windows of a run's metadata, flagging the seed leak."""
    if meta.get("eval_split") == "validation":
        return "validation (seed protocol: the tutorial's 'test' = validation, a leak)"
    return "test"
