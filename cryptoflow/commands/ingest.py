"""``cryptoflow ingest``: append new Poloniex candles to the Parquet candle store."""

from __future__ import annotations

import argparse
import sys

from cryptoflow.options import add_flow_options, given, validated

ALIASES = {"symbols": "--symbol", "max_requests_per_second": "--rate-limit"}


def configure(parser: argparse.ArgumentParser) -> None:
    """The ingest flow's parameters as options (``--symbol`` repeats, as ``--symbols A,B``)."""
    from flows.ingest import ingest

    add_flow_options(parser, ingest, aliases=ALIASES)


def main(args: argparse.Namespace) -> int:
    """Validate the arguments, run the ingest flow, print one line per series."""
    from flows.ingest import ingest
    from storage.errors import EXIT_TRANSIENT
    from tasks.ingest.outcome import IngestError
    from tasks.ingest.request import validate_request

    params = validated(ingest, given(args))
    # Bad input fails here, before Prefect starts, the network is touched or a file is written.
    validate_request(
        params["symbols"], params["interval"], params["start"], params["end"],
        params["base_url"], params["lookback_days"],
    )
    try:
        outcomes = ingest(**params)
    except IngestError as exc:
        _print_outcomes(exc.outcomes)  # every series' line, the failed ones too, then why
        print(f"cryptoflow ingest: {exc}", file=sys.stderr)
        failed = [o for o in exc.outcomes if o.get("error")]
        # The server unreachable (no series started), or every failure a remote one that
        # outlasted its retries: exit 4; anything else (a lock, a permanent API error): 1.
        transient = not exc.outcomes or (failed and all(o.get("retried") for o in failed))
        return EXIT_TRANSIENT if transient else 1
    _print_outcomes(outcomes)
    return 0


def _print_outcomes(outcomes: list[dict]) -> None:
    """One line per series on stdout (a failed one says so; the reason follows on stderr)."""
    from tasks.ingest.outcome import SeriesOutcome, gaps_text

    for o in outcomes:
        added = f"{o['added']:,} candles added"
        if o["added"]:
            added += f" ({o['first_new']} .. {o['last_new']})"
        stored = f"stored until {o['stored_until']}" if o["stored_until"] else "nothing stored"
        head = f"{o['symbol']} {o['interval']}: " + ("failed (see below); " if o["error"] else "")
        print(head + "; ".join([added, stored, gaps_text(SeriesOutcome(**o))]))
