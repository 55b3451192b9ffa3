"""Publishing live scores: the table and markdown artifacts of a market and its chart (PNG)."""

from __future__ import annotations

from typing import Any

from tasks.figures import figure_png, live_skill_figure
from tasks.forecast.live import LiveScores
from tasks.forecast.score import LiveMetrics
from tasks.report.html import png_data_uri
from tasks.report.plots import price_unit
from tasks.report.publish import artifact_key

#: Resolution of the chart file and of its copy embedded in the markdown artifact.
CHART_DPI, SMALL_DPI = 100, 55


def live_key(symbol: str, interval: str, kind: str = "live") -> str:
    """The artifact key of a market's live scores: ``live-btc-usdt-minute-5``."""
    return artifact_key(kind, f"{symbol}-{interval}")


def live_chart_png(live: LiveScores, dpi: int = CHART_DPI) -> bytes:
    """The market's rolling skill and errors per issue as PNG bytes."""
    title = (f"{live.symbol} {live.interval}: live {live.champion.model} (run "
             f"{live.champion.run_id}) vs persistence")
    fig = live_skill_figure(live.history, live.window, live.threshold, title,
                            price_unit(live.symbol))
    return figure_png(fig, dpi=dpi)


def _fmt(value: float | None, spec: str = ".6g") -> str:
    return "n/a" if value is None else format(value, spec)


def metrics_row(scope: str, m: LiveMetrics) -> dict[str, Any]:
    """One table row: a scope (last N issues, since promotion) and its figures."""
    return {
        "scope": scope, "issues": m.issues, "errors": m.n,
        "champion MSE": _fmt(m.mse), "persistence MSE": _fmt(m.mse_persistence),
        "champion MAE": _fmt(m.mae), "persistence MAE": _fmt(m.mae_persistence),
        "skill": _fmt(m.skill, "+.4f"),
    }


def live_table(live: LiveScores) -> list[dict[str, Any]]:
    """The table artifact: the last N issues, then since promotion."""
    return [metrics_row(f"last {live.window} issues", live.last_n),
            metrics_row("since promotion", live.since_promotion)]


def live_markdown(live: LiveScores, chart_path: str | None, png: bytes | None) -> str:
    """The markdown artifact: the line of the scoring, the table, the chart (embedded)."""
    rows = live_table(live)
    keys = list(rows[0])
    lines = [
        f"# Live scores: {live.symbol} {live.interval}",
        "",
        f"Champion `{live.champion.model}` (run `{live.champion.run_id}`, epoch "
        f"{live.champion.epoch}); last scored issue {live.last_scored or 'none'}.",
        "",
        live.message + ".",
        "",
        "| " + " | ".join(keys) + " |",
        "|" + "---|" * len(keys),
        *("| " + " | ".join(str(r[k]) for k in keys) + " |" for r in rows),
        "",
        f"Skill = 1 − MSE / MSE(persistence) on the same (issue, step) pairs of the champion's "
        f"issues; degraded below {live.threshold:g} over {live.window} issues"
        + (" (**degraded**)." if live.degraded else "."),
        "",
    ]
    if chart_path:
        lines += [f"Chart: `{chart_path}`", ""]
    if png:
        lines += [f"![live skill]({png_data_uri(png)})", ""]
    return "\n".join(lines)


def publish_live(live: LiveScores, chart_path: str | None) -> list[str]:
    """Publish the table and markdown artifacts of the market's live scores; their ids."""
    from prefect.artifacts import create_markdown_artifact, create_table_artifact

    table_id = create_table_artifact(
        table=live_table(live), key=live_key(live.symbol, live.interval),
        description=f"Live scores of {live.symbol} {live.interval} vs persistence",
    )
    md_id = create_markdown_artifact(
        markdown=live_markdown(live, chart_path, live_chart_png(live, dpi=SMALL_DPI)),
        key=live_key(live.symbol, live.interval, "live-chart"),
        description=f"Live scores of {live.symbol} {live.interval}: table and chart",
    )
    return [str(table_id), str(md_id)]
