"""The report as one self-contained HTML page (figures embedded as base64 PNG)."""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Mapping, Sequence
from typing import Any

from tasks.evaluation import EntryKind
from tasks.report.cells import format_cell, skill_summary, split_label, table_cell
from tasks.report.leaderboard import TABLE_HEADERS, TABLE_KEYS

#: The style sheet of every page the report room writes (report and comparison).
REPORT_CSS = """
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


def png_data_uri(png: bytes) -> str:
    """``data:image/png;base64,...`` for PNG bytes."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def page_head(title: str) -> list[str]:
    """The opening lines of a self-contained page: doctype, charset, title, style sheet."""
    return [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title>",
        f"<style>{REPORT_CSS}</style></head><body>",
    ]


def _row_classes(r: Mapping[str, Any]) -> str:
    classes = []
    if r.get("champion"):
        classes.append("champion")
    if r.get("kind") == EntryKind.BASELINE:
        classes.append("baseline")
    if r.get("status") not in (None, "ok"):
        classes.append("failed")
    return " ".join(classes)


def html_table(
    rows: Sequence[Mapping[str, Any]], keys: Sequence[str], headers: Mapping[str, str]
) -> str:
    """An HTML table of ``rows`` (columns ``keys``), champion, baselines and failures marked."""
    out = ["<table>", "<thead><tr>"]
    out += [f"<th>{html.escape(headers.get(k, k))}</th>" for k in keys]
    out.append("</tr></thead><tbody>")
    for r in rows:
        out.append(f'<tr class="{_row_classes(r)}">')
        out += [f"<td>{html.escape(table_cell(k, r))}</td>" for k in keys]
        out.append("</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def _summary(meta: Mapping[str, Any], champion: Mapping[str, Any] | None) -> list[str]:
    esc = html.escape
    label = split_label(meta)
    parts = [
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
            f"{esc(format_cell('test_rmse', champion.get('test_rmse')))}, skill vs persistence "
            f"{esc(skill_summary(champion))}.</p>"
        )
    else:
        parts.append("<p><b>No champion</b>: no model produced a finite validation loss.</p>")
    share = meta.get("out_of_range_share")
    if isinstance(share, float):
        scaler = meta.get("scaler") or "the"
        parts.append(
            f'<p class="diagnosis"><b>Diagnosis</b>: {share:.1%} of the {esc(label)} inputs lie '
            f"outside the range of the training inputs ({esc(str(scaler))} scaler)"
            + (": networks with bounded activations cannot follow them there; try "
               "<code>--scaler window</code>." if share >= 0.05 and scaler != "window" else ".")
            + " Each row's verdict says whether it beats persistence (Diebold–Mariano test).</p>"
        )
    folds, fold = int(meta.get("folds") or 1), int(meta.get("fold") or 0)
    if folds > 1:
        where = (f' — all folds side by side: <a href="../walk-forward/'
                 f'{esc(str(meta.get("run_id")))}.html">walk-forward verdict</a>'
                 if fold == folds - 1 else "")
        parts.append(f'<p class="sub">Walk-forward fold {fold + 1} of {folds}{where}.</p>')
    gate = meta.get("champion_gate")
    if isinstance(gate, Mapping) and gate.get("sentence"):
        parts.append(
            f'<p class="gate"><b>Champion gate</b> ({esc(str(gate.get("rule")))}, margin '
            f"{esc(str(gate.get('margin')))}): {esc(str(gate['sentence']))}</p>"
        )
    parts.append(
        f'<h2>Leaderboard</h2><p class="sub">Validation loss: scaled MSE of the target '
        f"on the validation windows. Test columns: price units on the {esc(label)} "
        "windows. Skill = 1 − MSE / MSE(persistence) on the same windows; its 95% interval "
        "comes from a paired moving block bootstrap over the windows (blocks of K, as "
        "neighbouring windows overlap). MASE = MAE / persistence's MAE on the training "
        "windows. Direction accuracy is n/a for a forecaster that never predicts a move "
        "(persistence). DM statistic and p-value against persistence: leaderboard.csv.</p>"
    )
    return parts


def _skipped_notes(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """A note per model whose chosen checkpoint did not load (selection fell back)."""
    notes = []
    for r in rows:
        skipped = r.get("skipped_checkpoints") or []
        if skipped:
            used = (f"used epoch {r.get('best_epoch')}" if r.get("best_epoch") is not None
                    else "no checkpoint loads: not scored")
            items = "".join(f"<li>{html.escape(line)}</li>" for line in skipped)
            notes.append(f'<div class="note"><b>{html.escape(str(r["model"]))}</b>: '
                         f"checkpoints skipped (did not load), {html.escape(used)}:"
                         f"<ul>{items}</ul></div>")
    return notes


#: Columns of the live table (rows of :func:`tasks.forecast.publish.live_table`).
LIVE_KEYS: tuple[str, ...] = ("scope", "issues", "errors", "champion MSE", "persistence MSE",
                              "champion MAE", "persistence MAE", "skill")


def live_html(live: Mapping[str, Any]) -> list[str]:
    """The "live since promotion" section: the champion's live scores vs persistence since
    promotion and over the last N issues, as of the last scored issue, and the chart."""
    esc = html.escape
    s = live["summary"]
    champion = s["champion"]
    rows = [{k: str(r[k]) for k in LIVE_KEYS} for r in live["rows"]]
    out = [
        "<h2>Live since promotion</h2>",
        f'<p class="sub">{esc(champion["model"])} (epoch {esc(str(champion["epoch"]))}) has '
        f"forecast {esc(s['symbol'])} {esc(s['interval'])} live since its promotion; scored "
        f"against the candles that arrived, up to the issue of {esc(str(s['last_scored']))} "
        f"(as of this report: scores move with every candle). Skill = 1 − MSE / "
        f"MSE(persistence) on the same (issue, step) pairs; degraded below "
        f"{esc(str(s['threshold']))} over {esc(str(s['window']))} issues"
        + (" — <b>degraded</b>" if s.get("degraded") else "") + ".</p>",
        '<table class="live"><thead><tr>'
        + "".join(f"<th>{esc(k)}</th>" for k in LIVE_KEYS) + "</tr></thead><tbody>"
        + "".join("<tr>" + "".join(f"<td>{esc(r[k])}</td>" for k in LIVE_KEYS) + "</tr>"
                  for r in rows)
        + "</tbody></table>",
    ]
    if live.get("png"):
        out.append(
            f'<figure><img alt="live skill" src="{png_data_uri(live["png"])}"><figcaption>'
            f"Live: rolling skill over {esc(str(s['window']))} issues and each issue's mean "
            "absolute error, champion and persistence.</figcaption></figure>"
        )
    return out


def render_report_html(
    meta: Mapping[str, Any],
    rows: Sequence[Mapping[str, Any]],
    figures: Mapping[str, bytes],
    captions: Mapping[str, str] | None = None,
    live: Mapping[str, Any] | None = None,
) -> str:
    """One self-contained HTML page: metadata, leaderboard, the live section when the run has
    live scores (``live``: :func:`tasks.report.live.live_section`), figures as base64 PNG."""
    captions = captions or {}
    esc = html.escape
    champion = next((r for r in rows if r.get("champion")), None)
    parts = page_head(f"cryptoflow report {meta.get('run_id')}")
    parts += _summary(meta, champion)
    parts.append(html_table(rows, TABLE_KEYS, TABLE_HEADERS))
    parts += _skipped_notes(rows)
    if live:
        parts += live_html(live)
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


def render_sweep_html(
    meta: Mapping[str, Any],
    rows: Sequence[Mapping[str, Any]],
    figures: Mapping[str, bytes],
    columns: Mapping[str, str],
    captions: Mapping[str, str] | None = None,
) -> str:
    """A sweep run's self-contained page: its dataset and settings, a row per setting, the
    box plots embedded as base64 PNG, the run's metadata."""
    esc = html.escape
    captions = captions or {}
    parts = page_head(f"cryptoflow sweep report {meta.get('run_id')}")
    parts += [
        f"<h1>Regularization sweep: run {esc(str(meta.get('run_id')))}</h1>",
        f'<p class="sub">{esc(str(meta.get("symbol") or ""))} '
        f"{esc(str(meta.get('interval') or ''))} · window file {esc(str(meta.get('dataset_id')))}"
        f" · protocol <b>{esc(str(meta.get('protocol')))}</b> · {esc(str(meta.get('past')))} "
        f"candles in → {esc(str(meta.get('future')))} out · base model "
        f"<b>{esc(str(meta.get('model')))}</b> · {esc(str(meta.get('repeats')))} repeats of "
        f"{esc(str(meta.get('epochs')))} epochs, batch {esc(str(meta.get('batch_size')))} · "
        f"generated {esc(str(meta.get('generated') or ''))}</p>",
        '<h2>Settings</h2><p class="sub">Validation MSE of the target over the repeats of each '
        "setting (repeat r uses seed + r in every setting), best median first.</p>",
        html_table(rows, list(columns), columns),
        "<h2>Figures</h2>",
    ]
    for name, png in figures.items():
        parts.append(
            f'<figure><img alt="{esc(name)}" src="{png_data_uri(png)}">'
            f"<figcaption>{esc(captions.get(name, name))}</figcaption></figure>"
        )
    parts += ["<h2>Run metadata</h2>", _meta_table(meta), "</body></html>"]
    return "\n".join(parts) + "\n"
