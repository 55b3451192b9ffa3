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
    """Run the sweep flow; print the path of its ``sweep.csv``."""
    from flows.sweep import sweep

    params = validated(sweep, given(args) | {"progress_bar": sys.stderr.isatty()})
    print(json.dumps({"sweep_csv": sweep(**params)}))
    return 0
