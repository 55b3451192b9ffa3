"""The ``cryptoflow`` console script: a thin layer over the flows.

Each subcommand lives in ``cryptoflow/commands/<name>.py`` with ``configure(parser)`` and
``main(args) -> int``. A flow's subcommand generates its options from the flow's signature
(``cryptoflow/options.py``). Only the subcommand being run is imported, so ``cryptoflow --help``
stays fast. Exit codes: 0 done, 1 failed (a bug, or a flow run that failed), 2 bad input,
3 a corrupt or unreadable store, 4 a remote failure after its retries, 130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from cryptoflow.signals import orderly_shutdown
from storage.errors import EXIT_INTERRUPTED, CryptoflowError, exit_code_for

SUBCOMMANDS: dict[str, str] = {
    "ingest": "Fetch new candles from Poloniex into the Parquet candle store",
    "prepare": "Cut stored candles into scaled training windows (HDF5)",
    "train": "Train the model zoo in parallel, checkpointing every epoch",
    "sweep": "L1/L2 regularization sweep of one recurrent model (box plots in its report)",
    "report": "Select checkpoints by val_loss, score against baselines, write the report",
    "run": "All stages: ingest, prepare, train, report",
    "forecast": "Forecast the next candles with the market's champion (and persistence)",
    "serve": "Serve every deployment with its schedule in one process",
    "replay": "A Poloniex-compatible HTTP server over a recorded candle file",
    "settings": "Print the effective settings and where each value came from",
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; only ``command``'s options are configured (all of them when None)."""
    parser = argparse.ArgumentParser(
        prog="cryptoflow", description=__doc__.splitlines()[0],
        epilog="exit codes: 0 done, 1 failed, 2 bad input, 3 corrupt store, "
        "4 remote failure after retries, 130 interrupted",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, help_text in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=f"cryptoflow.commands.{name}")
        if command is None or command == name:
            importlib.import_module(f"cryptoflow.commands.{name}").configure(p)
    return parser


def _command(argv: list[str]) -> str | None:
    return next((a for a in argv if a in SUBCOMMANDS), None)


def _quiet_environment() -> None:
    from tasks.training.runtime import quiet_tensorflow_env

    quiet_tensorflow_env()
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # Without PREFECT_API_URL Prefect starts a temporary local server; its 20 s default start-up
    # budget is too short on a busy 2-core machine.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand; SIGINT and SIGTERM stop it in order (``cryptoflow.signals``).

    As the console script (``argv`` None) the signal handlers stay until the process ends; an
    in-process call gets the previous ones back.
    """
    _quiet_environment()
    console = argv is None
    argv = sys.argv[1:] if argv is None else list(argv)
    name = "cryptoflow"
    try:
        with orderly_shutdown(restore=not console):
            args = build_parser(_command(argv)).parse_args(argv)
            name = f"cryptoflow {args.command}"
            module = importlib.import_module(args._module)
            return _run_with_data_dir(module, args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (CryptoflowError, ValueError) as exc:
        # Bad input, a corrupt store, a remote failure: one clear line, no traceback.
        code = exit_code_for(exc)
        kind = {3: "corrupt store", 4: "remote failure"}.get(code, "error")
        print(f"{name}: {kind}: {exc}", file=sys.stderr)
        return code


def _run_with_data_dir(module, args: argparse.Namespace) -> int:
    """Run a subcommand; a data directory given as a URL (``s3://…``) is worked on through a
    local mirror: pulled before, each changed file pushed (one PUT) after. A URL the mirror
    cannot write to (``http://``, ``ftp://``) is refused before anything is read or written."""
    from storage.settings import settings

    data_dir = getattr(args, "data_dir", None) or settings().data_dir
    if "://" not in str(data_dir):
        return int(module.main(args) or 0)
    from storage.remote import check_data_dir, is_remote, local_data_dir, mirrored

    check_data_dir(str(data_dir))
    if not is_remote(data_dir):  # file://: the local folder itself
        args.data_dir = local_data_dir(str(data_dir))
        return int(module.main(args) or 0)
    with mirrored(data_dir, prefixes=_reads(args)) as local:
        args.data_dir = local
        return int(module.main(args) or 0)


def _reads(args: argparse.Namespace) -> list[str]:
    """What the subcommand reads under a remote data dir, pulled first (the rest on demand)."""
    from storage.layout import stage_prefixes

    interval = getattr(args, "interval", None)
    return stage_prefixes(
        getattr(args, "symbols", None) or getattr(args, "symbol", None),
        getattr(interval, "value", interval),
        getattr(args, "dataset", None),
        getattr(args, "run_id", None),
    )


if __name__ == "__main__":
    raise SystemExit(main())
