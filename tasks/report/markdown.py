"""The report as markdown for the Prefect artifact: summary, leaderboard table, figures."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tasks.report.cells import format_cell, skill_summary, split_label, table_cell
from tasks.report.html import LIVE_KEYS, png_data_uri
from tasks.report.leaderboard import TABLE_HEADERS, TABLE_KEYS


def leaderboard_markdown(rows: Sequence[Mapping[str, Any]]) -> str:
    """GitHub-flavoured markdown table of the leaderboard (champion starred)."""
    head = "| " + " | ".join(TABLE_HEADERS[k] for k in TABLE_KEYS) + " |"
    sep = "|" + "---|" * len(TABLE_KEYS)
    lines = [head, sep]
    for r in rows:
        cells = []
        for k in TABLE_KEYS:
            cell = table_cell(k, r)
            if k == "model" and r.get("champion"):
                cell = f"**{cell}** ★"
            cells.append(cell.replace("|", "\\|"))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def live_markdown(live: Mapping[str, Any]) -> list[str]:
    """The "live since promotion" lines: a sentence and the table (the chart is in the HTML
    and in the market's own live artifact)."""
    s = live["summary"]
    keys = list(LIVE_KEYS)
    return [
        "## Live since promotion",
        "",
        f"`{s['champion']['model']}` live on {s['symbol']} {s['interval']}, scored up to the "
        f"issue of {s['last_scored']}" + (" — **degraded**" if s.get("degraded") else "") + ".",
        "",
        "| " + " | ".join(keys) + " |",
        "|" + "---|" * len(keys),
        *("| " + " | ".join(str(r[k]) for k in keys) + " |" for r in live["rows"]),
        "",
    ]


def render_report_markdown(
    meta: Mapping[str, Any],
    rows: Sequence[Mapping[str, Any]],
    figures: Mapping[str, bytes],
    report_path: str | None = None,
    live: Mapping[str, Any] | None = None,
) -> str:
    """Markdown for the Prefect artifact: summary, leaderboard table, the live section when
    the run has live scores, figures as data URIs."""
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
            f"RMSE {format_cell('test_rmse', champion.get('test_rmse'))}, "
            f"skill vs persistence {skill_summary(champion)}",
            "",
        ]
    share = meta.get("out_of_range_share")
    if isinstance(share, float):
        lines += [f"**Diagnosis**: {share:.1%} of the evaluation inputs lie outside the training "
                  f"inputs' range ({meta.get('scaler')} scaler).", ""]
    gate = meta.get("champion_gate")
    if isinstance(gate, Mapping) and gate.get("sentence"):
        lines += [
            f"**Champion gate** ({gate.get('rule')}, margin {gate.get('margin')}): "
            f"{gate['sentence']}",
            "",
        ]
    lines += [leaderboard_markdown(rows), ""]
    if live:
        lines += live_markdown(live)
    if report_path:
        lines += [f"Full report: `{report_path}`", ""]
    for name, png in figures.items():
        lines += [f"![{name}]({png_data_uri(png)})", ""]
    return "\n".join(lines)
