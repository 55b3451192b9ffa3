"""``cryptoflow run``: every stage (ingest, prepare, train, report) as one pipeline flow run."""

from __future__ import annotations

import argparse
import os
import sys

from cryptoflow.options import MARKET_ALIASES, add_flow_options, given, validated


def configure(parser: argparse.ArgumentParser) -> None:
    """The pipeline flow's parameters as options, plus ``--tutorial``."""
    from flows.params import TUTORIAL_TRAINING
    from flows.pipeline import pipeline

    add_flow_options(parser, pipeline, aliases=MARKET_ALIASES)
    shown = ", ".join(f"{k}={v}" for k, v in TUTORIAL_TRAINING.items())
    parser.add_argument(
        "--tutorial", action="store_true",
        help=f"the tutorial's training settings ({shown}); options given win",
    )


def preflight(base_url: str | None) -> None:
    """Fail in seconds, before any Prefect server starts, when the candle API is unreachable."""
    from storage.errors import BadInputError
    from storage.settings import settings
    from tasks.poloniex.client import PoloniexClient
    from tasks.poloniex.errors import PoloniexError

    url = base_url or settings().poloniex.poloniex_url
    try:
        with PoloniexClient(url, timeout=5.0, max_requests_per_second=0) as client:
            client.server_time_ms()
    except PoloniexError as exc:
        raise BadInputError(
            f"cannot reach the Poloniex API at {url}: {exc}. Without network access, start "
            "`cryptoflow replay --data FILE` and pass the URL it prints as --base-url "
            "(or run `make demo`). Nothing was written."
        ) from None


def main(args: argparse.Namespace) -> int:
    """Validate, probe the API, run the pipeline; print the run id and the report's path."""
    from flows.params import TUTORIAL_TRAINING, market_list
    from flows.pipeline import fold_specs, pipeline

    params = validated(pipeline, (TUTORIAL_TRAINING if args.tutorial else {}) | given(args))
    fold_specs(*(params[k] for k in ("protocol", "past", "future", "stride", "scaler", "folds",
                                     "fold_mode")))
    market_list(params["symbols"], params["intervals"])  # too many markets: before the probe
    preflight(params["base_url"])
    if not os.environ.get("PREFECT_API_URL"):
        print("PREFECT_API_URL is not set: using a temporary local Prefect server", file=sys.stderr)
    try:
        result = pipeline(**params)
    except Exception as exc:  # the flow run is Failed; Prefect's log above has the details
        print(f"cryptoflow run: failed: {exc}", file=sys.stderr)
        return 1
    for label, market in (result.get("markets") or {"": result}).items():
        head = f"{label}: " if label else ""
        print(f"{head}run:    {market['run_id']}")
        print(f"{head}report: {market['report']}")
    if result.get("summary"):
        print(f"markets: {result['summary']}")
    return 0
