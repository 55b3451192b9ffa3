"""``cryptoflow sweep``: the L1/L2 regularization sweep of one recurrent zoo model."""

from __future__ import annotations

import argparse
import json
import sys

from cryptoflow.options import add_flow_options, given, validated

SKIP = ("progress_bar",)


def configure(parser: argparse.ArgumentParser) -> None:
    """The sweep flow's parameters as options."""
    from flows.sweep import sweep

    add_flow_options(parser, sweep, skip=SKIP)


def main(args: argparse.Namespace) -> int:
    """Run the sweep flow; print its run id (for ``cryptoflow report --run``) and ``sweep.csv``."""
    from pathlib import Path

    from flows.sweep import sweep

    params = validated(sweep, given(args) | {"progress_bar": sys.stderr.isatty()})
    table = sweep(**params)
    print(json.dumps({"run_id": Path(table).parent.name, "sweep_csv": table}))
    return 0
