"""Why a model fails out of sample: a one-sentence verdict per leaderboard row from its skill,
its Diebold–Mariano p-value against persistence and the share of test inputs outside the
training range (``tasks.metrics.out_of_range_share``, in the run's metadata)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

#: Significance level of the verdicts (two-sided Diebold–Mariano test against persistence).
ALPHA = 0.05
#: A skill below this with many inputs out of range reads as "collapses out of range".
COLLAPSE_SKILL = -1.0
#: Share of evaluation inputs outside the training range from which that reading applies.
OUT_OF_RANGE_MIN = 0.05


def _p(p: float) -> str:
    return f"p={p:.2g}" if p >= 1e-4 else "p<1e-4"


def verdict(row: Mapping[str, Any], out_of_range: float | None, alpha: float = ALPHA) -> str:
    """One sentence on a leaderboard row: beats / worse than / indistinguishable from
    persistence (with the p-value), or collapses out of range."""
    name, skill, p = row.get("model"), row.get("skill"), row.get("dm_p")
    if name == "persistence":
        return "the reference: the last close for every step"
    if skill is None:
        return "not scored on the test windows"
    share = out_of_range if out_of_range is not None and np.isfinite(out_of_range) else 0.0
    if skill < COLLAPSE_SKILL and share >= OUT_OF_RANGE_MIN:
        return (f"collapses out of range (skill {skill:+.2f}; {share:.0%} of test inputs lie "
                "outside the training range)")
    if p is None:
        return f"skill {skill:+.3f} vs persistence (no significance test)"
    if p < alpha and skill > 0:
        return f"beats persistence ({_p(p)})"
    if p < alpha:
        return f"worse than persistence ({_p(p)})"
    return f"indistinguishable from persistence ({_p(p)})"
