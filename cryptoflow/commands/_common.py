"""Options shared by several subcommands."""

from __future__ import annotations

import argparse
import os


def add_runner_arguments(parser: argparse.ArgumentParser) -> None:
    """``--task-runner`` and ``--dask-address`` (where the zoo trains)."""
    parser.add_argument(
        "--task-runner", default="process", choices=["process", "dask"],
        help="process: one local process per model (default); dask: a Dask cluster",
    )
    parser.add_argument(
        "--dask-address", default=os.environ.get("CRYPTOFLOW_DASK_ADDRESS") or None,
        help="Dask scheduler, tcp://host:8786 (env CRYPTOFLOW_DASK_ADDRESS); "
        "default with --task-runner dask: a LocalCluster sized to this machine",
    )
