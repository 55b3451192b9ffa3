"""The leaderboard and its renderings: rows, CSV/JSON, self-contained HTML, Prefect markdown,
and the "tutorial vs seed vs honest" comparison.

Pure functions: evaluation results in, text and tables out. Files are written by
:func:`write_report_files` (atomically) and artifacts published by the report flow.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from storage.atomic import atomic_write_bytes, atomic_write_text
from tasks.evaluation import EntryKind, EntryScore, RunEvaluation


@dataclass(frozen=True)
class TutorialResult:
    """One row of the tutorial's published table (validation loss scaled; "test" MSE in USD²)."""

    model: str
    family: str
    layers: int | None
    activation: str
    val_loss: float | None
    test_mse: float


#: The tutorial's published results ("Predicting Cryptocurrency Price With Tensorflow and Keras",
#: Steeve Huang, 2018; code github.com/khuangaf/CryptocurrencyPrediction). The one place these
#: numbers live in code; docs/tutorial-results.md shows the same table (a test keeps them equal).
TUTORIAL_RESULTS: tuple[TutorialResult, ...] = (
    TutorialResult("cnn2_relu", "CNN", 2, "ReLU", 0.00029, 114308),
    TutorialResult("cnn2_leaky", "CNN", 2, "Leaky ReLU", 0.00029, 115525),
    TutorialResult("cnn3_relu", "CNN", 3, "ReLU", 0.00029, 201718),
    TutorialResult("cnn3_leaky", "CNN", 3, "Leaky ReLU", 0.00028, 108700),
    TutorialResult("cnn4_relu", "CNN", 4, "ReLU", 0.00030, 117947),
    TutorialResult("cnn4_leaky", "CNN", 4, "Leaky ReLU", 0.03217, 12356304),
    TutorialResult("lstm_tanh_relu", "LSTM", 1, "tanh + ReLU", 0.00007, 26649),
    TutorialResult("lstm_tanh_leaky", "LSTM", 1, "tanh + Leaky ReLU", 0.00004, 15364),
    TutorialResult("gru_tanh_relu", "GRU", 1, "tanh + ReLU", 0.00004, 17667),
    TutorialResult("gru_tanh_leaky", "GRU", 1, "tanh + Leaky ReLU", 0.00004, 15474),
    TutorialResult("lag", "baseline", None, "-", None, 19122),
    TutorialResult("linear", "baseline", None, "-", None, 19789),
)

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
    "direction_accuracy": "Direction accuracy",
    "skill": "Skill vs persistence",
    "best_epoch": "Best epoch",
    "epochs": "Epochs",
    "status": "Status",
    "kind": "Kind",
    "family": "Family",
    "champion": "Champion",
    "history_val_loss": "val_loss (history)",
    "checkpoint": "Checkpoint",
}

_NAME_RE = re.compile(r"^(?P<family>cnn|lstm|gru)(?P<layers>\d*)_(?P<acts>.+)$")
_ACT = {"relu": "ReLU", "leaky": "Leaky ReLU", "tanh": "tanh", "sigmoid": "sigmoid"}


def describe_model(name: str) -> tuple[str, int | None, str]:
    """(family, #layers, activation) from a zoo or baseline name, e.g. ``cnn3_leaky``."""
    m = _NAME_RE.match(name)
    if m is None:
        return (
            ("baseline", None, "-")
            if name in {"persistence", "lag", "linear"}
            else (
                name,
                None,
                "-",
            )
        )
    family = m.group("family").upper()
    layers = int(m.group("layers")) if m.group("layers") else 1
    acts = " + ".join(_ACT.get(a, a) for a in m.group("acts").split("_"))
    return family, layers, acts


def _num(value: float | None) -> float | None:
    if value is None:
        return None
    v = float(value)
    return v if math.isfinite(v) else None


def leaderboard_rows(evaluation: RunEvaluation) -> list[dict[str, Any]]:
    """One JSON-safe row per model and baseline, best validation loss first, failures last."""
    rows = [_row(e, evaluation.champion) for e in evaluation.entries]
    ok = [r for r in rows if r["val_loss"] is not None]
    rest = [r for r in rows if r["val_loss"] is None]
    return sorted(ok, key=lambda r: r["val_loss"]) + rest


def _row(e: EntryScore, champion: str | None) -> dict[str, Any]:
    family, layers, activation = describe_model(e.name)
    v, t = e.validation, e.evaluation
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
        "history_val_loss": _num(e.history_val_loss),
        "val_loss": _num(v.mse_scaled) if v else None,
        "val_mse": _num(v.mse) if v else None,
        "val_skill": _num(v.skill) if v else None,
        "test_mse_scaled": _num(t.mse_scaled) if t else None,
        "test_mse": _num(t.mse) if t else None,
        "test_rmse": _num(t.rmse) if t else None,
        "test_mae": _num(t.mae) if t else None,
        "test_mape": _num(t.mape) if t else None,
        "direction_accuracy": _num(t.direction_accuracy) if t else None,
        "skill": _num(t.skill) if t else None,
        "rmse_by_step": [_num(math.sqrt(x)) for x in t.mse_by_step] if t else None,
        "checkpoint": e.checkpoint,
    }


def leaderboard_frame(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """The leaderboard as a DataFrame (list columns dropped), tutorial columns first."""
    df = pd.DataFrame([{k: v for k, v in r.items() if not isinstance(v, list)} for r in rows])
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


def split_label(evaluation: RunEvaluation | Mapping[str, Any]) -> str:
    """Human label of the evaluation windows, flagging the seed protocol's leak."""
    meta = evaluation.meta if isinstance(evaluation, RunEvaluation) else evaluation
    if meta.get("eval_split") == "validation":
        return "validation (seed protocol: the tutorial's 'test' = validation, a leak)"
    return "test"


def _fmt(key: str, value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "★" if value else ""
    if isinstance(value, float):
        if key in {"val_loss", "history_val_loss", "test_mse_scaled"}:
            return f"{value:.3g}" if value < 1e-3 else f"{value:.5f}"
        if key in {"skill", "val_skill"}:
            return f"{value:+.3f}"
        if key == "direction_accuracy":
            return f"{value:.1%}"
        if key == "test_mape":
            return f"{value:.3f}"
        return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.2f}"
    return str(value)


TABLE_KEYS: tuple[str, ...] = (
    "model",
    "layers",
    "activation",
    "val_loss",
    "test_mse",
    "test_rmse",
    "test_mae",
    "test_mape",
    "direction_accuracy",
    "skill",
    "best_epoch",
    "status",
)


def leaderboard_markdown(rows: Sequence[Mapping[str, Any]]) -> str:
    """GitHub-flavoured markdown table of the leaderboard (champion starred)."""
    head = "| " + " | ".join(LEADERBOARD_COLUMNS[k] for k in TABLE_KEYS) + " |"
    sep = "|" + "---|" * len(TABLE_KEYS)
    lines = [head, sep]
    for r in rows:
        cells = []
        for k in TABLE_KEYS:
            cell = _fmt(k, r.get(k))
            if k == "model" and r.get("champion"):
                cell = f"**{cell}** ★"
            cells.append(cell.replace("|", "\\|"))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _html_table(
    rows: Sequence[Mapping[str, Any]], keys: Sequence[str], headers: Mapping[str, str]
) -> str:
    out = ["<table>", "<thead><tr>"]
    out += [f"<th>{html.escape(headers.get(k, k))}</th>" for k in keys]
    out.append("</tr></thead><tbody>")
    for r in rows:
        classes = []
        if r.get("champion"):
            classes.append("champion")
        if r.get("kind") == EntryKind.BASELINE:
            classes.append("baseline")
        if r.get("status") not in (None, "ok"):
            classes.append("failed")
        out.append(f'<tr class="{" ".join(classes)}">')
        out += [f"<td>{html.escape(_fmt(k, r.get(k)))}</td>" for k in keys]
        out.append("</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def png_data_uri(png: bytes) -> str:
    """``data:image/png;base64,...`` for PNG bytes."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2em auto;max-width:1200px;
color:#222;padding:0 1em}
h1{margin-bottom:.2em} .sub{color:#666;margin-top:0}
table{border-collapse:collapse;margin:1em 0;font-size:14px}
th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}
th{background:#f3f3f3} td:first-child,th:first-child{text-align:left}
tr.champion{background:#e6f4ea;font-weight:600} tr.baseline{color:#555;font-style:italic}
tr.failed{color:#b00020}
.meta td{text-align:left} .note{background:#fff8e1;border-left:4px solid #f4b400;padding:.6em 1em}
figure{margin:1.5em 0} figure img{max-width:100%;border:1px solid #eee}
figcaption{color:#555;font-size:14px}
"""


def render_report_html(
    meta: Mapping[str, Any],
    rows: Sequence[Mapping[str, Any]],
    figures: Mapping[str, bytes],
    captions: Mapping[str, str] | None = None,
) -> str:
    """One self-contained HTML page: metadata, leaderboard, figures embedded as base64 PNG."""
    captions = captions or {}
    esc = html.escape
    champion = next((r for r in rows if r.get("champion")), None)
    label = split_label(meta)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>cryptoflow report {esc(str(meta.get('run_id')))}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>Forecast report: run {esc(str(meta.get('run_id')))}</h1>",
        f'<p class="sub">{esc(str(meta.get("symbol") or ""))} '
        f"{esc(str(meta.get('interval') or ''))}"
        f" · protocol <b>{esc(str(meta.get('protocol')))}</b>"
        f" · {esc(str(meta.get('past')))} candles in → {esc(str(meta.get('future')))} out"
        f" · generated {esc(str(meta.get('generated') or ''))}</p>",
    ]
    if meta.get("protocol") == "seed":
        parts.append(
            '<p class="note">Seed protocol: the tutorial\'s set-up reproduced on purpose. '
            'The scaler saw every row and the "test" loss is measured on the validation '
            "windows that chose the epochs, so these numbers are optimistic. "
            "Compare with an honest run.</p>"
        )
    if champion:
        parts.append(
            f"<p><b>Champion</b> (lowest validation loss among the zoo's models; baselines are "
            f"compared, never crowned): <b>{esc(champion['model'])}</b> at epoch "
            f"{esc(str(champion.get('best_epoch')))}; on the {esc(label)} windows RMSE "
            f"{esc(_fmt('test_rmse', champion.get('test_rmse')))}, skill vs persistence "
            f"{esc(_fmt('skill', champion.get('skill')))}.</p>"
        )
    else:
        parts.append("<p><b>No champion</b>: no model produced a finite validation loss.</p>")
    parts.append(
        f'<h2>Leaderboard</h2><p class="sub">Validation loss: scaled MSE of the target '
        f"on the validation windows. Test columns: price units on the {esc(label)} "
        "windows. Skill = 1 − MSE / MSE(persistence) on the same windows.</p>"
    )
    parts.append(_html_table(rows, TABLE_KEYS, LEADERBOARD_COLUMNS))
    parts.append("<h2>Figures</h2>")
    for name, png in figures.items():
        parts.append(
            f'<figure><img alt="{esc(name)}" src="{png_data_uri(png)}">'
            f"<figcaption>{esc(captions.get(name, name))}</figcaption></figure>"
        )
    parts.append("<h2>Run metadata</h2>")
    parts.append(_meta_table(meta))
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _meta_table(meta: Mapping[str, Any]) -> str:
    rows = []
    for key, value in meta.items():
        text = json.dumps(value) if isinstance(value, list | dict) else str(value)
        rows.append(f"<tr><th>{html.escape(key)}</th><td>{html.escape(text)}</td></tr>")
    return '<table class="meta">' + "".join(rows) + "</table>"


def render_report_markdown(
    meta: Mapping[str, Any],
    rows: Sequence[Mapping[str, Any]],
    figures: Mapping[str, bytes],
    report_path: str | None = None,
) -> str:
    """Markdown for the Prefect artifact: summary, leaderboard table, figures as data URIs."""
    champion = next((r for r in rows if r.get("champion")), None)
    lines = [
        f"# Forecast report: run `{meta.get('run_id')}`",
        "",
        f"protocol **{meta.get('protocol')}** · dataset `{meta.get('dataset_id')}` · candles "
        f"`{meta.get('candle_fingerprint')}` · evaluation windows: {split_label(meta)}",
        "",
    ]
    if champion:
        lines += [
            f"**Champion**: `{champion['model']}` (epoch {champion.get('best_epoch')}), "
            f"RMSE {_fmt('test_rmse', champion.get('test_rmse'))}, "
            f"skill vs persistence {_fmt('skill', champion.get('skill'))}",
            "",
        ]
    lines += [leaderboard_markdown(rows), ""]
    if report_path:
        lines += [f"Full report: `{report_path}`", ""]
    for name, png in figures.items():
        lines += [f"![{name}]({png_data_uri(png)})", ""]
    return "\n".join(lines)


def artifact_key(prefix: str, run_id: str) -> str:
    """A Prefect artifact key (lowercase letters, digits, dashes) for a run."""
    slug = re.sub(r"[^a-z0-9]+", "-", f"{prefix}-{run_id}".lower()).strip("-")
    return slug[:200]


def write_report_files(
    report_dir: Path,
    meta: Mapping[str, Any],
    rows: Sequence[Mapping[str, Any]],
    figures: Mapping[str, bytes],
    html_text: str,
) -> dict[str, str]:
    """Write leaderboard.json/.csv, evaluation.json, each figure PNG and report.html atomically."""
    report_dir.mkdir(parents=True, exist_ok=True)
    written = {
        "leaderboard_json": atomic_write_text(
            report_dir / "leaderboard.json", leaderboard_json(rows)
        ),
        "leaderboard_csv": atomic_write_text(report_dir / "leaderboard.csv", leaderboard_csv(rows)),
        "evaluation_json": atomic_write_text(
            report_dir / "evaluation.json", json.dumps(dict(meta), indent=2, default=str) + "\n"
        ),
    }
    for name, png in figures.items():
        written[f"figure_{name}"] = atomic_write_bytes(report_dir / f"{name}.png", png)
    written["report_html"] = atomic_write_text(report_dir / "report.html", html_text)
    return {k: str(v) for k, v in written.items()}


# ----------------------------------------------------------------- tutorial vs seed vs honest


COMPARISON_COLUMNS: dict[str, str] = {
    "model": "Model",
    "layers": "#Layers",
    "activation": "Activation",
    "tutorial_val_loss": "Tutorial val loss",
    "tutorial_test_mse": "Tutorial 'test' MSE",
    "seed_val_loss": "Seed val loss",
    "seed_test_mse": "Seed 'test' MSE (validation windows)",
    "honest_val_loss": "Honest val loss",
    "honest_test_mse": "Honest test MSE",
    "honest_skill": "Honest skill vs persistence",
}


def comparison_rows(
    seed_rows: Iterable[Mapping[str, Any]] | None,
    honest_rows: Iterable[Mapping[str, Any]] | None,
    tutorial: Sequence[TutorialResult] = TUTORIAL_RESULTS,
) -> list[dict[str, Any]]:
    """Side by side per model: the tutorial's published numbers, the seed run, the honest run."""
    seed = {r["model"]: r for r in (seed_rows or [])}
    honest = {r["model"]: r for r in (honest_rows or [])}
    names = [t.model for t in tutorial]
    names += [n for n in [*seed, *honest] if n not in names]
    names = list(dict.fromkeys(names))
    published = {t.model: t for t in tutorial}
    out = []
    for name in names:
        t = published.get(name)
        family, layers, activation = describe_model(name)
        s, h = seed.get(name, {}), honest.get(name, {})
        out.append(
            {
                "model": name,
                "layers": layers,
                "activation": activation,
                "tutorial_val_loss": t.val_loss if t else None,
                "tutorial_test_mse": float(t.test_mse) if t else None,
                "seed_val_loss": s.get("val_loss"),
                "seed_test_mse": s.get("test_mse"),
                "honest_val_loss": h.get("val_loss"),
                "honest_test_mse": h.get("test_mse"),
                "honest_skill": h.get("skill"),
            }
        )
    return out


_COMPARISON_INTRO = (
    '<p class="sub">Tutorial: the published table of "Predicting Cryptocurrency Price With '
    'Tensorflow and Keras" (Steeve Huang; Poloniex BTC 5-min 2015–2017). Seed: our reproduction '
    "of its protocol, run {seed}. Honest: scaler fit on training rows, chronological "
    "train/validation/test with an embargo, test windows never used to choose, run {honest}. "
    "MSE in USD² (price units squared).</p>"
)


def render_comparison_html(
    rows: Sequence[Mapping[str, Any]], seed_run: str | None, honest_run: str | None
) -> str:
    """Self-contained HTML: how much of the tutorial's result survives honest evaluation."""
    keyed = list(rows)
    fmt_keys = {
        "tutorial_val_loss": "val_loss",
        "seed_val_loss": "val_loss",
        "honest_val_loss": "val_loss",
        "tutorial_test_mse": "test_mse",
        "seed_test_mse": "test_mse",
        "honest_test_mse": "test_mse",
        "honest_skill": "skill",
    }
    body = ["<table><thead><tr>"]
    body += [f"<th>{html.escape(v)}</th>" for v in COMPARISON_COLUMNS.values()]
    body.append("</tr></thead><tbody>")
    for r in keyed:
        body.append("<tr>")
        for k in COMPARISON_COLUMNS:
            body.append(f"<td>{html.escape(_fmt(fmt_keys.get(k, k), r.get(k)))}</td>")
        body.append("</tr>")
    body.append("</tbody></table>")
    return (
        "\n".join(
            [
                "<!DOCTYPE html>",
                '<html lang="en"><head><meta charset="utf-8">',
                "<title>tutorial vs seed vs honest</title>",
                f"<style>{_CSS}</style></head><body>",
                "<h1>How much of the tutorial's result survives honest evaluation?</h1>",
                _COMPARISON_INTRO.format(
                    seed=html.escape(str(seed_run)), honest=html.escape(str(honest_run))
                ),
                *body,
                "</body></html>",
            ]
        )
        + "\n"
    )


# ----------------------------------------------------------------------------- figures


FIGURE_CAPTIONS: dict[str, str] = {
    "actual_vs_predicted": "The champion's forecasts (red dots, one 16-step forecast per "
    "window) against the actual close, over the last part of the evaluation windows.",
    "leaderboard": "RMSE of each model on the evaluation windows; baselines as vertical lines.",
    "error_by_horizon": "RMSE per forecast step: how fast each forecast degrades.",
    "learning_curves": "Training and validation loss per epoch; the chosen epoch is marked.",
    "regularization": "Regularization sweep: validation error over repeats per setting.",
}


def _interval_minutes(interval: Any) -> int | None:
    try:
        from storage.schema import Interval

        return Interval.parse(str(interval)).ms // 60_000
    except (ValueError, TypeError):
        return None


def report_figures(
    evaluation: RunEvaluation,
    rows: Sequence[Mapping[str, Any]],
    sweep: pd.DataFrame | None = None,
    dpi: int = 100,
) -> dict[str, bytes]:
    """Render every report figure to PNG bytes, keyed by name (see ``FIGURE_CAPTIONS``)."""
    from tasks import figures as F

    label = "validation (seed leak)" if evaluation.eval_split == "validation" else "test"
    unit = _price_unit(evaluation.meta.get("symbol"))
    out: dict[str, Any] = {}
    fc = evaluation.champion_forecast
    if fc is not None:
        out["actual_vs_predicted"] = F.actual_vs_predicted_figure(
            fc.output_times,
            fc.actual,
            fc.predicted,
            model=fc.name,
            split_label=label,
            price_unit=unit,
            input_times=fc.input_times,
            inputs=fc.inputs,
        )
    models = {r["model"]: r["test_rmse"] for r in rows if r["kind"] == EntryKind.MODEL}
    baselines = {r["model"]: r["test_rmse"] for r in rows if r["kind"] == EntryKind.BASELINE}
    out["leaderboard"] = F.leaderboard_figure(
        models, baselines, split_label=label, price_unit=unit, champion=evaluation.champion
    )
    by_step = {r["model"]: r["rmse_by_step"] for r in rows if r.get("rmse_by_step")}
    out["error_by_horizon"] = F.horizon_error_figure(
        {k: [v if v is not None else float("nan") for v in vs] for k, vs in by_step.items()},
        split_label=label,
        price_unit=unit,
        candle_minutes=_interval_minutes(evaluation.meta.get("interval")),
    )
    if evaluation.histories:
        chosen = {e.name: e.best_epoch for e in evaluation.entries if e.kind == EntryKind.MODEL}
        statuses = {e.name: e.status for e in evaluation.entries if e.kind == EntryKind.MODEL}
        out["learning_curves"] = F.learning_curves_figure(
            evaluation.histories, chosen, statuses=statuses
        )
    if sweep is not None and len(sweep):
        out["regularization"] = F.regularization_figure(sweep, price_unit=unit)
    return {name: F.figure_png(fig, dpi=dpi) for name, fig in out.items()}


def _price_unit(symbol: Any) -> str:
    """Quote currency of a symbol such as ``BTC_USDT`` (USD when unknown)."""
    if isinstance(symbol, str) and "_" in symbol:
        return symbol.split("_", 1)[1]
    return "USD"
