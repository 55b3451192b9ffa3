"""The cross-market summary: per market its current champion, that champion's test skill vs
persistence and its live skill; a page beside the runs' reports (``reports/markets.html`` and
``.json``, the report index of every market a run touched) and a table artifact in the UI.

It only reads the champion registry and each market's live-score state, so it costs nothing
to refresh after every pipeline or forecast run.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from prefect import task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from storage.champions import ChampionRegistry
from storage.layout import DataLayout
from storage.reports import ReportStore
from tasks.metrics import finite_or_none
from tasks.report.cells import format_cell
from tasks.report.html import page_head

MARKETS_ARTIFACT_KEY = "markets-summary"
#: Live forecasts and champions are judged under the honest protocol only.
PROTOCOL = "honest"
#: The columns of the table (page, JSON and artifact), in order.
COLUMNS = ("symbol", "interval", "champion", "epoch", "run_id", "promoted_at", "test_skill",
           "live_issues", "live_skill", "live_skill_since_promotion")

LiveOf = Callable[[DataLayout, str, str, str], Mapping[str, Any] | None]


def live_summary(
    layout: DataLayout, symbol: str, interval: str, run_id: str
) -> Mapping[str, Any] | None:
    """The market's live skill when its scored champion is run ``run_id``: ``issues`` and
    ``skill`` over the last window, ``since_promotion_skill``; None when it has no scores."""
    from tasks.forecast.live import live_view

    view = live_view(layout.root, symbol, interval, run_id)
    if view is None:
        return None
    return {"issues": view.last_n.issues, "skill": view.last_n.skill,
            "since_promotion_skill": view.since_promotion.skill}


def market_rows(
    layout: DataLayout, markets: Sequence[Sequence[str]], live_of: LiveOf = live_summary
) -> list[dict[str, Any]]:
    """One row per market (the order given): its honest champion and live skill, or empty cells
    with ``champion`` None when the market has none yet."""
    registry = ChampionRegistry(layout.reports)
    rows = []
    for symbol, interval in markets:
        record = registry.current(PROTOCOL, symbol, interval) or {}
        split = record.get("eval_split") or "test"
        test = ((record.get("metrics") or {}).get(split)) or {}
        live = (live_of(layout, symbol, interval, record["run_id"]) if record else None) or {}
        rows.append({
            "symbol": symbol, "interval": interval,
            "champion": record.get("model"), "epoch": record.get("epoch"),
            "run_id": record.get("run_id"), "promoted_at": record.get("recorded_at"),
            "test_skill": finite_or_none(test.get("skill")),
            "live_issues": live.get("issues"),
            "live_skill": finite_or_none(live.get("skill")),
            "live_skill_since_promotion": finite_or_none(live.get("since_promotion_skill")),
        })
    return rows


def cell(column: str, value: Any) -> str:
    """A table cell's text: skills signed to 3 places, other values as the reports show them."""
    if value is None:
        return "–"
    return format_cell("skill" if column.endswith("skill") or "skill_" in column else column,
                       value)


def markets_page(rows: Sequence[Mapping[str, Any]]) -> str:
    """The self-contained HTML index: one table row per market, its report linked."""
    out = page_head("cryptoflow markets")
    out.append("<h1>Markets</h1>")
    out.append("<p>Each market's current champion (honest protocol), its test skill vs "
               "persistence, and its live skill over the last scored forecasts and since its "
               "promotion (1 - MSE / persistence's MSE on the same forecasts; above 0 beats "
               "persistence).</p>")
    out.append("<table><thead><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in COLUMNS)
               + "</tr></thead><tbody>")
    for r in rows:
        cells = []
        for c in COLUMNS:
            value = r.get(c)
            text = html.escape(cell(c, value))
            if c == "run_id" and value:
                text = f'<a href="{html.escape(str(value))}/report.html">{text}</a>'
            cells.append(f"<td>{text}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    if any(r.get("champion") is None for r in rows):
        out.append("<p>A market without a champion has not been through the pipeline yet: "
                   "<code>cryptoflow run --symbol SYMBOL --interval INTERVAL</code>.</p>")
    out.append("</body></html>")
    return "\n".join(out)


def write_markets(data_dir: str, markets: Sequence[Sequence[str]],
                  live_of: LiveOf = live_summary) -> tuple[str, list[dict[str, Any]]]:
    """Write ``reports/markets.json`` and ``.html`` (the rows of ``markets`` merged over the
    markets already listed there); return the page's path and the rows of ``markets``."""
    layout = DataLayout.at(data_dir)
    store = ReportStore(layout.reports)
    fresh = market_rows(layout, markets, live_of)
    known = {(r["symbol"], r["interval"]): r for r in store.read_markets()}
    known |= {(r["symbol"], r["interval"]): r for r in fresh}
    rows = [known[k] for k in sorted(known)]
    page = store.write_markets(json.dumps({"markets": rows}, indent=2), markets_page(rows))
    return str(page), fresh


@task(name="markets-summary", cache_policy=NO_CACHE)
def markets_summary_task(data_dir: str, markets: list[list[str]]) -> str:
    """Refresh the cross-market page and publish its table artifact; returns the page's path."""
    path, rows = write_markets(data_dir, markets)
    create_table_artifact(
        table=[{c: cell(c, r[c]) for c in COLUMNS} for r in rows],
        key=MARKETS_ARTIFACT_KEY,
        description=f"Champions and live skill of {len(rows)} market(s); page: {path}",
    )
    return path
