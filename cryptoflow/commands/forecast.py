"""``cryptoflow forecast``: the champion forecasts the next candles; print the latest forecast."""

from __future__ import annotations

import argparse
import json
from typing import Any

from cryptoflow.options import MARKET_ALIASES, add_flow_options, given, validated


def configure(parser: argparse.ArgumentParser) -> None:
    """The forecast flow's parameters as options, plus ``--json``."""
    from flows.forecast import forecast

    add_flow_options(parser, forecast, aliases=MARKET_ALIASES)
    parser.add_argument("--json", action="store_true",
                        help="print the latest forecast as JSON instead of a table")


def main(args: argparse.Namespace) -> int:
    """Run the forecast flow, then print the store's latest issue of each market."""
    from flows.forecast import forecast
    from storage.forecasts import ForecastStore
    from storage.layout import DataLayout

    # Bad parameters fail here, in one line, before a flow run starts.
    params = validated(forecast, given(args))
    result = forecast(**params)
    store = ForecastStore(DataLayout.at(params["data_dir"]).forecasts)
    summaries = list((result.get("markets") or {"": result}).values())
    tables = [latest_table(store.latest(s["symbol"], s["interval"]), s["champion"])
              for s in summaries]
    if args.json:
        shown = [{**s, "forecast": t} for s, t in zip(summaries, tables, strict=True)]
        print(json.dumps(shown[0] if len(shown) == 1 else {"markets": shown}, indent=2,
                         default=str))
    else:
        print("\n\n".join(render(s, t) for s, t in zip(summaries, tables, strict=True)))
    return 0


def latest_table(latest: Any, champion: str | None) -> list[dict[str, Any]]:
    """One dict per target time: step, target_time (ISO), the champion's and persistence's
    predicted close."""
    out: dict[int, dict[str, Any]] = {}
    for row in latest.itertuples(index=False):
        entry = out.setdefault(int(row.step), {
            "step": int(row.step), "target_time": row.target_time.isoformat(),
        })
        key = "persistence" if row.model == "persistence" else "champion"
        if key == "champion" and row.model != champion:
            continue
        entry[key] = float(row.predicted_close)
    return [out[k] for k in sorted(out)]


def render(summary: dict[str, Any], table: list[dict[str, Any]]) -> str:
    """The table the command prints, headed by the issue and what was stored."""
    champion = summary["champion"] or "champion"
    head = (f"{summary['symbol']} {summary['interval']}: {champion} forecast issued at "
            f"{summary['issued_at']} ({summary['added']} rows added)")
    lines = [head, f"{'step':>4}  {'target time':<25}  {champion:>16}  {'persistence':>16}"]
    nan = float("nan")
    for r in table:
        lines.append(f"{r['step']:>4}  {r['target_time']:<25}  {r.get('champion', nan):>16.6f}"
                     f"  {r.get('persistence', nan):>16.6f}")
    live = summary.get("live") or {}
    if live.get("message"):
        lines.append(f"live: {live['message']}")
    return "\n".join(lines)
