"""The regularization sweep's pure parts: its settings, one setting's trainings, the tidy table.

For a recurrent base model: target in {bias, kernel, recurrent, activity} x kind in {l1, l2} x
strength (the tutorial: 0, 0.1, 0.01, 0.001, 0.0001) x repeats. Repeat r uses seed ``seed + r``
in every setting, so settings are compared on paired inits. Strength 0 is the same unregularized
model for every target and kind: trained once per repeat, reported under each (target, kind).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from storage.errors import BadInputError
from storage.runs import ModelDir
from tasks.training.checkpoints import CheckpointMode
from tasks.training.loop import VALIDATION_BATCH, EpochCallback, train_model

STRENGTHS: tuple[float, ...] = (0.0, 0.1, 0.01, 0.001, 0.0001)
SWEEP_COLUMNS = ("target", "kind", "strength", "repeat", "val_mse_scaled", "val_mse_price",
                 "best_val_loss")
Setting = tuple[str | None, str | None, float]


def check_sweep_model(model: str, repeats: int) -> None:
    """Refuse a base model that is not recurrent, or fewer than one repeat (BadInputError)."""
    from tasks.zoo import Family, entry

    if entry(model).family is not Family.RECURRENT:
        raise BadInputError(f"the sweep regularizes a recurrent layer; {model} is a CNN")
    if repeats < 1:
        raise BadInputError(f"repeats must be >= 1, got {repeats}")


def sweep_axes(targets: list[str] | None, kinds: list[str] | None) -> tuple[list[str], list[str]]:
    """The regularized targets and kinds, validated and as values (default: all of each)."""
    from tasks.zoo.recurrent import RegularizerKind, RegularizerTarget

    return (
        [RegularizerTarget(t).value for t in (targets or list(RegularizerTarget))],
        [RegularizerKind(k).value for k in (kinds or list(RegularizerKind))],
    )


def sweep_settings(targets: list[str], kinds: list[str], strengths: list[float] | None = None
                   ) -> list[Setting]:
    """Distinct settings to train: (target, kind, strength); strength 0 once as (None, None, 0).

    ``strengths`` None: :data:`STRENGTHS`.
    """
    from tasks.zoo.recurrent import RegularizerKind, RegularizerTarget

    targets = [RegularizerTarget(t).value for t in targets]
    kinds = [RegularizerKind(k).value for k in kinds]
    strengths = list(STRENGTHS if strengths is None else strengths)
    for s in strengths:
        if not s >= 0:
            raise BadInputError(f"regularizer strengths must be >= 0, got {s}")
    settings: list[Setting] = []
    if any(float(s) == 0.0 for s in strengths):
        settings.append((None, None, 0.0))
    settings += [(t, k, float(s)) for t in targets for k in kinds for s in strengths if s]
    return settings


def sweep_setting_name(target: str | None, kind: str | None, strength: float) -> str:
    """Folder name of a sweep setting, e.g. ``bias-l2-0.01`` (``none-none-0`` unregularized)."""
    if not strength:
        return "none-none-0"
    return f"{target}-{kind}-{strength:g}"


def sweep_jobs(settings: list[Setting], sweep_dir: Path, dataset_path: Path, model: str,
               repeats: int, epochs: int, batch_size: int, seed: int) -> dict[str, dict[str, Any]]:
    """Setting name -> the worker job training its repeats (see :func:`run_sweep_setting`)."""
    jobs = {}
    for target, kind, strength in settings:
        name = sweep_setting_name(target, kind, strength)
        jobs[name] = {"kind": "sweep", "dataset_path": str(dataset_path), "model": model,
                      "setting_dir": str(sweep_dir / name), "target": target, "reg_kind": kind,
                      "strength": strength, "repeats": list(range(repeats)), "epochs": epochs,
                      "batch_size": batch_size, "seed": seed}
    return jobs


def validation_mse(net: Any, dataset_path: Path, model: str) -> dict[str, float]:
    """MSE of ``net`` on the validation windows, scaled and in price units (target feature)."""
    from tasks.windows import open_dataset
    from tasks.zoo import target_predictions

    with open_dataset(str(dataset_path)) as ds:
        x_val, y_val = ds.split_arrays("validation")
        _, y_orig = ds.split_originals("validation")
        target = int(ds.attrs.get("target_feature", 0))
        scaler = ds.scaler
        anchors = ds.split_anchors("validation")
    predicted = np.asarray(net.predict(np.asarray(x_val, np.float32), batch_size=VALIDATION_BATCH,
                                       verbose=0), dtype=np.float64)
    pred = target_predictions(model, predicted, target)
    truth_scaled = np.asarray(y_val, np.float64)[:, :, target]
    price_pred = scaler.target_to_price(pred, target, anchors)
    truth_price = np.asarray(y_orig, np.float64)[:, :, target]
    return {
        "val_mse_scaled": float(np.mean((pred - truth_scaled) ** 2)),
        "val_mse_price": float(np.mean((price_pred - truth_price) ** 2)),
    }


def run_sweep_setting(job: dict[str, Any], on_progress: EpochCallback | None = None
                      ) -> dict[str, Any]:
    """Train every repeat of one regularization setting; rows of the tidy sweep table.

    ``job``: dataset_path, model, setting_dir, target, reg_kind, strength, repeats, epochs,
    batch_size, seed. Repeat r uses seed ``seed + r`` (paired across settings). A repeat with a
    ``result.json`` is not trained again.
    """
    from tasks.zoo import spec_from_dict, spec_to_dict

    model = job["model"]
    strength = float(job["strength"])
    base = spec_from_dict(model, job.get("spec"))
    regs = (
        [{"target": job["target"], "kind": job["reg_kind"], "strength": strength}]
        if strength else []
    )
    spec = spec_from_dict(model, {**spec_to_dict(base), "regularizers": regs})
    setting_dir = Path(job["setting_dir"])
    rows = []
    for repeat in job["repeats"]:
        md = ModelDir(setting_dir / f"repeat-{int(repeat):03d}")
        done = md.read_result()
        if done is None or "val_mse_price" not in done:
            captured: dict[str, Any] = {}
            result = train_model(
                Path(job["dataset_path"]), model, md.path, epochs=int(job["epochs"]),
                batch_size=int(job["batch_size"]), seed=int(job["seed"]) + int(repeat),
                spec=spec, checkpoints=CheckpointMode.NONE, threads=job.get("threads"),
                on_epoch=on_progress,
                on_epoch_model=lambda _epoch, net, c=captured: c.__setitem__("net", net),
            )
            if "net" not in captured:  # pragma: no cover - mode none always retrains
                raise RuntimeError(f"{md.path}: no model to score")
            done = {**result, **validation_mse(captured["net"], Path(job["dataset_path"]), model)}
            md.write_result(done)
        rows.append({
            "target": job["target"], "kind": job["reg_kind"], "strength": strength,
            "repeat": int(repeat), "val_mse_scaled": done["val_mse_scaled"],
            "val_mse_price": done["val_mse_price"], "best_val_loss": done.get("best_val_loss"),
        })
    return {"setting": setting_dir.name, "rows": rows}


def tidy_rows(results: list[dict[str, Any]], targets: list[str], kinds: list[str]
              ) -> list[dict[str, Any]]:
    """Rows of the sweep table; the unregularized rows appear under every (target, kind)."""
    rows: list[dict[str, Any]] = []
    for res in results:
        for row in res["rows"]:
            if row["strength"] == 0.0:
                rows += [{**row, "target": t, "kind": k} for t in targets for k in kinds]
            else:
                rows.append(row)
    return sorted(rows, key=lambda r: (r["target"], r["kind"], -r["strength"], r["repeat"]))


def render_csv(rows: list[dict[str, Any]]) -> str:
    """The tidy CSV text (floats written exactly)."""
    lines = [",".join(SWEEP_COLUMNS)]
    for r in rows:
        lines.append(",".join(
            repr(r[c]) if isinstance(r[c], float) else ("" if r[c] is None else str(r[c]))
            for c in SWEEP_COLUMNS
        ))
    return "\n".join(lines) + "\n"
