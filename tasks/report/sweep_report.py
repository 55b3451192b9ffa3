"""A sweep run's own report: its box plots, a row per setting, its dataset and settings."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from storage.errors import BadInputError
from storage.layout import DataLayout
from storage.runs import RunStore
from tasks import figures as F
from tasks.metrics import finite_or_none
from tasks.report.html import render_sweep_html
from tasks.report.plots import FIGURE_CAPTIONS, price_unit
from tasks.report.sweep import load_sweep

#: The settings table of a sweep report: key -> header.
SWEEP_TABLE_COLUMNS: dict[str, str] = {
    "target": "Target",
    "kind": "Kind",
    "strength": "Strength",
    "repeats": "Repeats",
    "median_val_mse_price": "Median validation MSE (price)",
    "min_val_mse_price": "Min",
    "max_val_mse_price": "Max",
    "median_val_mse_scaled": "Median validation MSE (scaled)",
}
#: What a sweep report records from the sweep's ``run.json`` (its dataset and settings).
SWEEP_META_KEYS: tuple[str, ...] = (
    "dataset_id", "dataset_path", "protocol", "symbol", "interval", "past", "future",
    "epochs", "batch_size", "seed", "repeats", "targets", "kinds", "strengths", "devices",
    "created",
)


def sweep_rows(table: pd.DataFrame) -> list[dict[str, Any]]:
    """One row per (target, kind, strength): repeats and the spread of validation MSE over
    them, best median (price units) first."""
    groups = table.groupby(["target", "kind", "strength"], sort=True)
    rows = [
        {
            "target": str(target),
            "kind": str(kind),
            "strength": f"{float(strength):g}",
            "repeats": int(len(g)),
            "median_val_mse_price": finite_or_none(float(g["val_mse_price"].median())),
            "min_val_mse_price": finite_or_none(float(g["val_mse_price"].min())),
            "max_val_mse_price": finite_or_none(float(g["val_mse_price"].max())),
            "median_val_mse_scaled": finite_or_none(float(g["val_mse_scaled"].median())),
        }
        for (target, kind, strength), g in groups
    ]
    return sorted(rows, key=lambda r: (r["median_val_mse_price"] is None,
                                       r["median_val_mse_price"] or 0.0))


def render_sweep_report(store: RunStore, run_id: str, flow_run_id: str | None
                        ) -> dict[str, Any]:
    """``{"rows", "meta", "figures", "html", "small"}`` of a sweep run, from its own table."""
    info = store.read_run(run_id) or {}
    sweep = load_sweep(store, run_id)
    if sweep is None or sweep.run_id != run_id:
        raise BadInputError(
            f"sweep run {run_id!r} has no sweep table yet (its sweep did not finish); "
            f"run `cryptoflow sweep --run-id {run_id}` again to complete it"
        )
    meta: dict[str, Any] = {"run_id": run_id, "kind": "sweep",
                            "model": (info.get("models") or [None])[0]}
    meta |= {k: info[k] for k in SWEEP_META_KEYS if k in info}
    meta |= {"sweep_table": str(sweep.path), "report_flow_run_id": flow_run_id,
             "generated": datetime.now(UTC).isoformat(timespec="seconds")}
    rows = sweep_rows(sweep.table)
    fig = F.regularization_figure(sweep.table, price_unit=price_unit(meta.get("symbol")))
    figures = {"regularization": F.figure_png(fig)}
    html_text = render_sweep_html(meta, rows, figures, SWEEP_TABLE_COLUMNS, FIGURE_CAPTIONS)
    return {"rows": rows, "meta": meta, "figures": figures, "html": html_text, "small": {}}


@task(name="render-sweep-report", cache_policy=NO_CACHE)
def render_sweep_report_task(data_dir: str, run_id: str, flow_run_id: str | None
                             ) -> dict[str, Any]:
    """The settings table, box plots (PNG) and HTML of one sweep run."""
    return render_sweep_report(RunStore(DataLayout.at(data_dir).runs), run_id, flow_run_id)
