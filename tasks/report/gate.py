"""The champion gate: a run's winner becomes its market's champion only if, on the run's own
evaluation windows, its MSE beats persistence and (rule ``beat-both``) the current champion,
whose checkpoint is predicted on those same windows.

:func:`decide` is the rule on numbers; :func:`score_incumbent` scores the current champion on
the challenger's windows (or says why it cannot be); :func:`gate_champion` puts them together.
"""

from __future__ import annotations

import math
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from storage.champions import ChampionRegistry, GateRule
from storage.errors import BadInputError, CorruptStoreError
from storage.layout import DataLayout
from storage.runs import RunStore
from storage.settings import env_name, settings
from tasks.baselines import Baseline
from tasks.evaluation import RunEvaluation, predict_target, resolve_dataset_path, score_on_split
from tasks.report.plots import price_unit

#: SI prefixes for MSE values in a reason line (12.3 M USD²).
_PREFIXES = ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))


@dataclass(frozen=True)
class IncumbentScore:
    """The current champion of the market, scored on the challenger's evaluation windows:
    ``mse`` (price units) and ``n_windows``, or ``problem`` saying why it could not be."""

    run_id: str
    model: str
    mse: float | None = None
    n_windows: int | None = None
    problem: str | None = None

    @property
    def scored(self) -> bool:
        """Whether the incumbent has a finite MSE on these windows."""
        return self.problem is None and _finite(self.mse)


@dataclass(frozen=True)
class GateDecision:
    """Whether the run's winner was promoted, the one-line ``reason``, the report's
    ``sentence`` and the ``evidence`` stored with it in the registry."""

    promoted: bool
    reason: str
    sentence: str
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_meta(self) -> dict[str, Any]:
        """What the report's metadata keeps of it (``champion_gate``)."""
        return {
            "promoted": self.promoted,
            "sentence": self.sentence,
            "rule": self.evidence.get("rule"),
            "margin": self.evidence.get("margin"),
        }


def check_gate(rule: GateRule | str, margin: float) -> tuple[GateRule, float]:
    """The rule and margin, validated; ``BadInputError`` naming the setting otherwise."""
    try:
        parsed = GateRule(str(rule).strip().lower())
    except ValueError:
        valid = ", ".join(r.value for r in GateRule)
        raise BadInputError(
            f"champion_gate ({env_name('champion_gate')}) must be one of {valid}, got {rule!r}"
        ) from None
    try:
        value = float(margin)
    except (TypeError, ValueError):
        value = math.nan
    if not (0.0 <= value < 1.0):
        raise BadInputError(
            f"champion_margin ({env_name('champion_margin')}) must be a number in [0, 1), "
            f"got {margin!r}"
        )
    return parsed, value


def gate_settings() -> tuple[GateRule, float]:
    """The champion gate's rule and margin from the settings (``CRYPTOFLOW_CHAMPION_*``)."""
    current = settings()
    return check_gate(current.champion_gate, current.champion_margin)


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(float(value))


def beats(challenger: float | None, opponent: float | None, margin: float) -> bool:
    """``challenger < (1 - margin) * opponent``, both finite."""
    return _finite(challenger) and _finite(opponent) and challenger < (1 - margin) * opponent


def format_mse(value: float | None) -> str:
    """An MSE in three significant figures with an SI prefix (``12.3 M``); ``n/a`` if none."""
    if not _finite(value):
        return "n/a"
    for scale, prefix in _PREFIXES:
        if abs(value) >= scale:
            return f"{value / scale:.3g} {prefix}"
    return f"{value:.3g}"


def decide(
    challenger: float | None,
    persistence: float | None,
    incumbent: IncumbentScore | None,
    rule: GateRule | str,
    margin: float,
    unit: str = "USD",
) -> tuple[bool, str]:
    """(promoted, one-line reason) for a winner with MSE ``challenger`` against persistence's
    and the incumbent's MSE on the same windows (``incumbent`` None: the market has none)."""
    rule, margin = check_gate(rule, margin)
    c = f"{format_mse(challenger)} {unit}²"
    times = f"(1 − {margin:g}) × " if margin else ""
    if rule is GateRule.OFF:
        return True, (
            f"gate off ({env_name('champion_gate')}=off): promoted without comparison "
            f"(test MSE {c}, persistence's {format_mse(persistence)})"
        )
    if not _finite(challenger):
        return False, "no finite test MSE on the evaluation windows"
    if not beats(challenger, persistence, margin):
        return False, f"test MSE {c} not below {times}persistence's {format_mse(persistence)}"
    won = f"test MSE {c} below {times}persistence's {format_mse(persistence)}"
    if incumbent is None:
        return True, f"{won}; the first champion of its market"
    named = f"current champion {incumbent.model} (run {incumbent.run_id})"
    if rule is GateRule.BEAT_PERSISTENCE:
        return True, f"{won} (rule beat-persistence: the {named} is not compared)"
    if not incumbent.scored:
        problem = incumbent.problem or "no finite MSE"
        return True, (
            f"{won}; the {named} could not be scored on these windows ({problem}), "
            "so judged against persistence only"
        )
    if not beats(challenger, incumbent.mse, margin):
        extra = f", margin {margin:g}" if margin else ""
        return False, (
            f"loses to {named}: {format_mse(challenger)} vs {format_mse(incumbent.mse)} "
            f"{unit}²{extra}"
        )
    return True, f"{won} and the {named}'s {format_mse(incumbent.mse)}"


def judge_champion(
    evaluation: RunEvaluation,
    incumbent: IncumbentScore | None,
    rule: GateRule | str,
    margin: float,
) -> GateDecision:
    """The gate's decision on the run's winner (its evaluation-window MSE against
    persistence's and ``incumbent``'s on the same windows), with its evidence."""
    rule, margin = check_gate(rule, margin)
    if evaluation.champion is None:
        raise BadInputError(f"run {evaluation.run_id!r} has no winner to judge")
    meta = evaluation.meta
    winner = evaluation.entry(evaluation.champion).evaluation
    baseline = evaluation.entry(Baseline.PERSISTENCE.value).evaluation
    challenger_mse = None if winner is None else winner.mse
    persistence_mse = None if baseline is None else baseline.mse
    unit = price_unit(meta.get("symbol"))
    promoted, reason = decide(challenger_mse, persistence_mse, incumbent, rule, margin, unit)
    against = [] if rule is GateRule.OFF else ["persistence"]
    if rule is GateRule.BEAT_BOTH and incumbent is not None and incumbent.scored:
        against.append("incumbent")
    evidence = {
        "rule": rule.value,
        "margin": margin,
        "eval_split": evaluation.eval_split,
        "n_windows": None if winner is None else winner.n_windows,
        "unit": f"{unit}²",
        "challenger_mse": _json_float(challenger_mse),
        "persistence_mse": _json_float(persistence_mse),
        "incumbent_run_id": None if incumbent is None else incumbent.run_id,
        "incumbent_model": None if incumbent is None else incumbent.model,
        "incumbent_mse": None if incumbent is None else _json_float(incumbent.mse),
        "incumbent_problem": None if incumbent is None else incumbent.problem,
        "judged_against": against,
    }
    market = (
        f"{meta.get('symbol') or '?'} {meta.get('interval') or '?'} ({evaluation.protocol})"
    )
    if promoted:
        sentence = f"{evaluation.champion} was promoted to champion of {market}: {reason}."
    elif incumbent is not None:
        sentence = (
            f"{evaluation.champion} was kept out; the champion of {market} stays "
            f"{incumbent.model} (run {incumbent.run_id}): {reason}."
        )
    else:
        sentence = (
            f"{evaluation.champion} was kept out; {market} has no champion yet: {reason}."
        )
    return GateDecision(promoted, reason, sentence, evidence)


def _json_float(value: float | None) -> float | None:
    return float(value) if _finite(value) else None


# ------------------------------------------------------------------------ the incumbent


def _run_window_path(layout: DataLayout, record: Mapping[str, Any]) -> Path | None:
    """The window file of a champion record's run (its ``run.json``, else its dataset id)."""
    info: dict[str, Any] = {"dataset_id": record.get("dataset_id")}
    try:
        info.update(RunStore(layout.runs).read_run(str(record.get("run_id"))) or {})
    except (BadInputError, CorruptStoreError):
        pass  # an unreadable run folder: the dataset id may still find the windows
    try:
        return resolve_dataset_path(layout, info)
    except CorruptStoreError:
        return None


def _record_market(layout: DataLayout, record: Mapping[str, Any]) -> tuple[Any, Any] | None:
    """(symbol, interval) of a record: its own fields, else (version 1) its run's windows."""
    if record.get("symbol") is not None:
        return record.get("symbol"), record.get("interval")
    from storage.windows.reader import read_attrs

    path = _run_window_path(layout, record)
    if path is None:
        return None
    try:
        attrs = read_attrs(path)
    except (OSError, CorruptStoreError):
        return None
    return attrs.get("symbol"), attrs.get("interval")


def find_incumbent(
    layout: DataLayout, registry: ChampionRegistry, evaluation: RunEvaluation
) -> dict[str, Any] | None:
    """The current champion of the run's market and protocol, other than the run itself (a
    report made again judges the run against the champion before it)."""
    market = (evaluation.meta.get("symbol"), evaluation.meta.get("interval"))
    for record in reversed(registry.records()):
        if record.get("protocol") != evaluation.protocol:
            continue
        if record.get("run_id") == evaluation.run_id:
            continue
        if _record_market(layout, record) == market:
            return record
    return None


def _compatibility_problem(challenger: Any, incumbent: Any) -> str | None:
    """Why the incumbent's model cannot read the challenger's windows, or None."""
    shape_c = (challenger.past, len(challenger.features))
    shape_i = (incumbent.past, len(incumbent.features))
    if shape_i != shape_c:
        return f"its input shape {shape_i} differs from these windows' {shape_c}"
    if list(incumbent.features) != list(challenger.features):
        return f"its features {incumbent.features} differ from {challenger.features}"
    if incumbent.target_feature != challenger.target_feature:
        return "its target feature differs"
    if incumbent.future != challenger.future:
        return f"its horizon {incumbent.future} differs from {challenger.future}"
    if incumbent.scaler.kind != challenger.scaler.kind:
        return (
            f"its scaler {incumbent.scaler.kind.value} differs from "
            f"{challenger.scaler.kind.value}"
        )
    return None


def _load_incumbent(record: Mapping[str, Any]) -> Any:
    from tasks.selection import load_checkpoint

    return load_checkpoint(Path(str(record.get("checkpoint"))))


def score_incumbent(
    layout: DataLayout, evaluation: RunEvaluation, record: Mapping[str, Any]
) -> IncumbentScore:
    """The incumbent's checkpoint (safe mode) predicted on the challenger's evaluation windows
    and scored as the leaderboard scores; when it cannot be (its run's windows missing, other
    input shape, features, horizon or scaler kind, checkpoint missing or unloadable), the
    score says why. Inputs scaled with other parameters of the same kind (its own training
    rows) are rescaled from the unscaled windows into its scale, its forecasts back."""
    from tasks.windows import open_dataset

    run_id, model = str(record.get("run_id")), str(record.get("model"))

    def unscored(problem: str) -> IncumbentScore:
        return IncumbentScore(run_id, model, problem=problem)

    own_path = _run_window_path(layout, record)
    if own_path is None:
        return unscored("its run's window file is missing")
    split = evaluation.eval_split
    ds = open_dataset(str(evaluation.meta["dataset_path"]))
    try:
        try:
            own = open_dataset(str(own_path))
            own.close()
            problem = _compatibility_problem(ds, own)
        except (OSError, CorruptStoreError) as exc:
            return unscored(f"its run's window file {own_path} cannot be read: {exc}")
        if problem is not None:
            return unscored(problem)
        try:
            net = _load_incumbent(record)
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, CorruptStoreError) as exc:
            return unscored(f"its checkpoint did not load: {exc}")
        forecast = _forecaster(net, ds, own.scaler, split)
        try:
            metrics = score_on_split(ds, split, forecast)
        except (ValueError, BadInputError) as exc:  # a forecast of another shape
            return unscored(f"its forecasts do not fit these windows: {exc}")
    finally:
        ds.close()
    if not _finite(metrics.mse):
        return IncumbentScore(run_id, model, None, metrics.n_windows, "no finite MSE")
    return IncumbentScore(run_id, model, float(metrics.mse), metrics.n_windows)


def _forecaster(net: Any, ds: Any, own_scaler: Any, split: str) -> Any:
    """``x (n, N, F) -> (n, K)`` in the challenger's scale, the incumbent fed its own scale."""
    scaler, target, horizon = ds.scaler, ds.target_feature, ds.future
    if own_scaler == scaler:  # same parameters (always so for the window scaler)
        return lambda x: predict_target(net, x, target, horizon)

    def forecast(x: np.ndarray) -> np.ndarray:
        originals, _ = ds.split_originals(split)  # unscaled, (n, N, F)
        predicted = predict_target(net, own_scaler.transform(originals), target, horizon)
        prices = own_scaler.target_to_price(predicted, target)
        return scaler.transform(prices, feature=target)

    return forecast


def gate_champion(
    layout: DataLayout,
    registry: ChampionRegistry,
    evaluation: RunEvaluation,
    rule: GateRule | str,
    margin: float,
) -> GateDecision:
    """Judge the run's winner: find its market's current champion, score it on the run's
    evaluation windows (not under rule ``off``) and decide."""
    rule, margin = check_gate(rule, margin)
    record = None if rule is GateRule.OFF else find_incumbent(layout, registry, evaluation)
    incumbent = None if record is None else score_incumbent(layout, evaluation, record)
    return judge_champion(evaluation, incumbent, rule, margin)
