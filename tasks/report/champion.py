"""The run's winner for the champion registry: its record (model, epoch, checkpoint, metrics,
lineage, market), judged by the champion gate (:mod:`tasks.report.gate`) and recorded."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from storage.champions import ChampionRegistry, GateRule
from storage.layout import DataLayout
from tasks.evaluation import RunEvaluation
from tasks.report.gate import GateDecision, gate_champion


def champion_record(evaluation: RunEvaluation, flow_run_id: str | None) -> dict[str, Any] | None:
    """The registry record of the run's winner, or None when the run has none."""
    if evaluation.champion is None:
        return None
    e = evaluation.entry(evaluation.champion)
    meta = evaluation.meta
    eval_key = evaluation.eval_split if evaluation.eval_split != "validation" else "seed_test"
    return {
        "run_id": evaluation.run_id,
        "protocol": evaluation.protocol,
        "symbol": meta.get("symbol"),
        "interval": meta.get("interval"),
        "model": e.name,
        "epoch": e.best_epoch,
        "checkpoint": e.checkpoint,
        "dataset_id": meta.get("dataset_id"),
        "candle_fingerprint": meta.get("candle_fingerprint"),
        "metrics": {
            "validation": e.validation.to_dict() if e.validation else None,
            eval_key: e.evaluation.to_dict() if e.evaluation else None,
        },
        "eval_split": evaluation.eval_split,
        "flow_run_id": flow_run_id,
        "train_flow_run_id": meta.get("train_flow_run_id"),
    }


def record_champion(
    data_dir: str,
    evaluation: RunEvaluation,
    flow_run_id: str | None,
    rule: GateRule | str,
    margin: float,
) -> GateDecision | None:
    """Judge the run's winner by the gate and record it as champion or challenger; the
    decision (None when the run has no winner)."""
    record = champion_record(evaluation, flow_run_id)
    if record is None:
        return None
    folds, fold = int(evaluation.meta.get("folds", 1)), int(evaluation.meta.get("fold", 0))
    if fold < folds - 1:  # an older fold: its test block is not the newest data
        reason = (f"walk-forward fold {fold + 1} of {folds}: only the last fold's winner is a "
                  "champion candidate")
        return GateDecision(False, reason, f"{record['model']} not judged: {reason}.",
                            {"fold": fold, "folds": folds})
    layout = DataLayout.at(data_dir)
    registry = ChampionRegistry(layout.reports)
    decision = gate_champion(layout, registry, evaluation, rule, margin)
    registry.record(
        record, promoted=decision.promoted, reason=decision.reason, evidence=decision.evidence
    )
    return decision


@task(name="record-champion", cache_policy=NO_CACHE)
def record_champion_task(
    data_dir: str, evaluation: Any, flow_run_id: str | None, rule: str, margin: float
) -> Any:
    """Judge the run's winner by the champion gate and record it; returns the decision."""
    return record_champion(data_dir, evaluation, flow_run_id, rule, margin)
