"""``cryptoflow run``: every stage (ingest, prepare, train, report) as one pipeline flow run."""

from __future__ import annotations

import argparse
import os
import sys

from cryptoflow.commands._common import add_runner_arguments

#: The tutorial's training settings, behind ``--tutorial``.
TUTORIAL = {"epochs": 100, "batch_size": 8, "patience": None}


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--symbol", default="BTC_USDT", help="market BASE_QUOTE (BTC_USDT)")
    parser.add_argument("--interval", default="MINUTE_5", help="candle interval (default MINUTE_5)")
    parser.add_argument("--start", default=None, help="first candle when the store is empty (ISO)")
    parser.add_argument(
        "--base-url", default=None,
        help="Poloniex API base URL (default $CRYPTOFLOW_POLONIEX_URL or https://api.poloniex.com)",
    )
    parser.add_argument("--data-dir", default=None, help="data directory (default ./data)")
    parser.add_argument("--protocol", default="honest", choices=["honest", "seed"])
    parser.add_argument("--past", type=int, default=256, help="input candles per window")
    parser.add_argument("--future", type=int, default=16, help="candles predicted per window")
    parser.add_argument("--models", default="all", help="'all' or a comma list of model names")
    parser.add_argument("--epochs", type=int, default=None, help="max epochs per model (20)")
    parser.add_argument("--batch-size", type=int, default=None, help="batch size (64)")
    parser.add_argument("--parallel", type=int, default=2, help="models trained at once")
    parser.add_argument("--patience", type=int, default=None, help="early stopping patience (3)")
    parser.add_argument("--seed", type=int, default=0)
    add_runner_arguments(parser)
    parser.add_argument(
        "--tutorial", action="store_true",
        help="the tutorial's settings: 100 epochs, batch 8, no early stopping",
    )


def _parameters(args: argparse.Namespace) -> dict:
    from datetime import datetime

    from tasks.zoo import parse_models

    params: dict = {
        "symbol": args.symbol, "interval": args.interval, "base_url": args.base_url,
        "data_dir": args.data_dir, "protocol": args.protocol, "past": args.past,
        "future": args.future, "models": parse_models(args.models), "parallel": args.parallel,
        "seed": args.seed, "task_runner": args.task_runner, "dask_address": args.dask_address,
    }
    if args.start:
        try:
            params["start"] = datetime.fromisoformat(args.start)
        except ValueError:
            raise ValueError(f"--start {args.start!r} is not an ISO date or time") from None
    if args.tutorial:
        params.update(TUTORIAL)
    for name in ("epochs", "batch_size", "patience"):
        if getattr(args, name) is not None:
            params[name] = getattr(args, name)
    return params


def preflight(base_url: str | None) -> None:
    """Fail in seconds, before any Prefect server starts, when the candle API is unreachable."""
    from tasks.poloniex.client import PoloniexClient
    from tasks.poloniex.errors import PoloniexError
    from tasks.poloniex.settings import PoloniexSettings

    url = base_url or PoloniexSettings().poloniex_url
    try:
        with PoloniexClient(url, timeout=5.0, max_requests_per_second=0) as client:
            client.server_time_ms()
    except PoloniexError as exc:
        raise ValueError(
            f"cannot reach the Poloniex API at {url}: {exc}. Without network access, start "
            "`cryptoflow replay --data FILE` and pass the URL it prints as --base-url "
            "(or run `make demo`). Nothing was written."
        ) from None


def main(args: argparse.Namespace) -> int:
    from prefect.exceptions import ParameterTypeError

    from flows.pipeline import pipeline

    params = _parameters(args)
    try:  # the flow's own typed signature: bad values fail here, naming the parameter
        pipeline.validate_parameters(params)
    except ParameterTypeError as exc:
        raise ValueError(str(exc)) from None
    preflight(params["base_url"])
    if not os.environ.get("PREFECT_API_URL"):
        print("PREFECT_API_URL is not set: using a temporary local Prefect server", file=sys.stderr)
    try:
        result = pipeline(**params)
    except Exception as exc:  # the flow run is Failed; Prefect's log above has the details
        print(f"cryptoflow run: failed: {exc}", file=sys.stderr)
        return 1
    print(f"run:    {result['run_id']}")
    print(f"report: {result['report']}")
    return 0
