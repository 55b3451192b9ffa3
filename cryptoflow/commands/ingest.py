"""``cryptoflow ingest``: append new Poloniex candles to the Parquet candle store."""

from __future__ import annotations

import argparse
import sys


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``cryptoflow ingest``."""
    parser.add_argument(
        "--symbol",
        action="append",
        dest="symbols",
        metavar="SYMBOL",
        help="market, e.g. BTC_USDT (repeat for several, ingested in parallel; default BTC_USDT)",
    )
    parser.add_argument("--interval", default="MINUTE_5", help="candle interval (MINUTE_5)")
    parser.add_argument(
        "--start", default=None, help="first candle of a new store, date/time UTC "
        "(default: 30 days before the server's now); an existing store resumes after its end"
    )  # fmt: skip
    parser.add_argument("--end", default=None, help="last candle, date/time UTC (default: now)")
    parser.add_argument(
        "--base-url",
        default=None,
        help="Poloniex API (default https://api.poloniex.com, env CRYPTOFLOW_POLONIEX_URL); "
        "offline, the URL printed by `cryptoflow replay`",
    )
    parser.add_argument(
        "--data-dir", default=None, help="data directory (env CRYPTOFLOW_DATA_DIR, ./data)"
    )
    parser.add_argument(
        "--lookback-days", type=float, default=30.0, help="history of a new store (30)"
    )
    parser.add_argument("--retries", type=int, default=None, help="retries of one page (4)")
    parser.add_argument(
        "--rate-limit",
        type=float,
        default=None,
        help="max requests per second, 0 = off (env CRYPTOFLOW_MAX_REQUESTS_PER_SECOND, 20)",
    )
    parser.add_argument("--timeout", type=float, default=None, help="HTTP timeout, s (10)")
    parser.add_argument(
        "--no-progress", action="store_true", help="no progress bar even on a terminal"
    )


def main(args: argparse.Namespace) -> int:
    """Validate the arguments, run the ingest flow, print one line per series."""
    from flows.ingest import ingest
    from tasks.ingest.outcome import IngestError
    from tasks.ingest.request import validate_request

    symbols = args.symbols or ["BTC_USDT"]
    # Bad input fails here, before Prefect starts, the network is touched or a file is written.
    validate_request(
        symbols, args.interval, args.start, args.end, args.base_url, args.lookback_days
    )
    try:
        outcomes = ingest(
            symbols=symbols,
            interval=args.interval,
            start=args.start,
            end=args.end,
            base_url=args.base_url,
            data_dir=args.data_dir,
            lookback_days=args.lookback_days,
            retries=args.retries,
            max_requests_per_second=args.rate_limit,
            timeout=args.timeout,
            progress=False if args.no_progress else None,
        )
    except IngestError as exc:
        print(f"cryptoflow ingest: {exc}", file=sys.stderr)
        return 1
    for o in outcomes:
        print(
            f"{o['symbol']} {o['interval']}: {o['added']:,} candles added"
            + (f" ({o['first_new']} .. {o['last_new']})" if o["added"] else "")
            + f"; stored until {o['stored_until']}; {o['gaps']} gaps ({o['missing']} missing)"
        )
    return 0
