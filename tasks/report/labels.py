"""Display labels of leaderboard entries, read from the zoo registry and the baseline registry."""

from __future__ import annotations

from tasks.baselines import BASELINE_NAMES
from tasks.zoo import REGISTRY, CNNSpec, ModelName, RecurrentSpec

#: How an activation is written in the tutorial's table.
ACTIVATION_LABELS: dict[str, str] = {"relu": "ReLU", "leaky": "Leaky ReLU"}


def describe_model(name: str) -> tuple[str, int | None, str]:
    """(family, #layers, activation) of a zoo model or baseline, e.g. ``cnn3_leaky`` ->
    ``("CNN", 3, "Leaky ReLU")``; an unknown name -> ``(name, None, "-")``."""
    if name in BASELINE_NAMES:
        return "baseline", None, "-"
    try:
        spec = REGISTRY[ModelName(name)].default_spec
    except ValueError:
        return name, None, "-"
    if isinstance(spec, CNNSpec):
        return "CNN", len(spec.kernel_sizes), ACTIVATION_LABELS[spec.activation]
    if isinstance(spec, RecurrentSpec):
        head = ACTIVATION_LABELS[spec.head]
        return spec.cell.value.upper(), 1, f"{spec.cell_activation} + {head}"
    return name, None, "-"
