"""The champion's record (model, epoch, checkpoint, metrics, lineage) for the registry."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from storage.champions import ChampionRegistry
from storage.layout import DataLayout
from tasks.evaluation import RunEvaluation


def champion_record(evaluation: RunEvaluation, flow_run_id: str | None) -> dict[str, Any] | None:
    """The registry record of the run's champion, or None when the run has none."""
    if evaluation.champion is None:
        return None
    e = evaluation.entry(evaluation.champion)
    meta = evaluation.meta
    eval_key = evaluation.eval_split if evaluation.eval_split != "validation" else "seed_test"
    return {
        "run_id": evaluation.run_id,
        "protocol": evaluation.protocol,
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


@task(name="record-champion", cache_policy=NO_CACHE)
def record_champion_task(data_dir: str, evaluation: Any, flow_run_id: str | None) -> Any:
    """Add the run's champion, with its lineage, to the champion registry."""
    record = champion_record(evaluation, flow_run_id)
    if record is None:
        return None
    return ChampionRegistry(DataLayout.at(data_dir).reports).record(record)
