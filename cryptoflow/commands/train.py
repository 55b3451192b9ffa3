"""``cryptoflow train``: train the model zoo in parallel on one window file."""

from __future__ import annotations

import argparse
import json
import sys

from cryptoflow.options import add_flow_options, given, validated

SKIP = ("progress_bar",)


def configure(parser: argparse.ArgumentParser) -> None:
    """The train flow's parameters as options (a progress bar is drawn on a terminal)."""
    from flows.train import train

    add_flow_options(parser, train, skip=SKIP)


def main(args: argparse.Namespace) -> int:
    """Validate the request, then run the ``train`` flow; print the run id and its folder."""
    from flows.train import train
    from storage.layout import DataLayout
    from storage.runs import RunStore

    params = validated(train, given(args) | {"progress_bar": sys.stderr.isatty()})
    run_id = train(**params)
    store = RunStore(DataLayout.at(params["data_dir"]).runs)
    print(json.dumps({"run_id": run_id, "run_dir": str(store.run_dir(run_id))}))
    return 0
