"""The ``cryptoflow`` console script: a thin layer over the flows.

Each subcommand lives in ``cryptoflow/commands/<name>.py`` with ``configure(parser)`` and
``main(args) -> int``; modules are imported lazily so ``cryptoflow --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

SUBCOMMANDS: dict[str, str] = {
    "ingest": "Fetch new candles from Poloniex into the Parquet candle store",
    "prepare": "Cut stored candles into scaled training windows (HDF5)",
    "train": "Train the model zoo in parallel, checkpointing every epoch",
    "report": "Select checkpoints by val_loss, score against baselines, write the report",
    "run": "All stages: ingest, prepare, train, report",
    "serve": "Serve every deployment with its schedule in one process",
    "replay": "A Poloniex-compatible HTTP server over a recorded candle file",
}


def _quiet_environment() -> None:
    from tasks.training.runtime import quiet_tensorflow_env

    quiet_tensorflow_env()
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # Without PREFECT_API_URL Prefect starts a temporary local server; its 20 s default start-up
    # budget is too short on a busy 2-core machine.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cryptoflow", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, help_text in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=f"cryptoflow.commands.{name}")
        try:
            module = importlib.import_module(f"cryptoflow.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"cryptoflow.commands.{name}":
                raise
            p.set_defaults(_missing=True)
            continue
        module.configure(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    _quiet_environment()
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "_missing", False):
        parser.error(f"'{args.command}' is not available in this build")
    module = importlib.import_module(args._module)
    try:
        return _run_with_data_dir(module, args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except ValueError as exc:
        # Bad input: one clear line, no traceback.
        print(f"cryptoflow {args.command}: error: {exc}", file=sys.stderr)
        return 2


def _run_with_data_dir(module, args: argparse.Namespace) -> int:
    """Run a subcommand; a data directory given as a URL (``s3://…``) is worked on through a
    local mirror: pulled before, each changed file pushed (one PUT) after."""
    data_dir = getattr(args, "data_dir", None) or os.environ.get("CRYPTOFLOW_DATA_DIR")
    if not data_dir or "://" not in str(data_dir):
        return int(module.main(args) or 0)
    from storage.remote import mirrored

    with mirrored(data_dir) as local:
        args.data_dir = local
        return int(module.main(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
