"""``cryptoflow serve``: serve every deployment (schedules included) in this process."""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--limit",
        type=int,
        default=None,
        help="maximum number of flow runs executed at once by this process (default: no limit)",
    )


def main(args: argparse.Namespace) -> int:
    from deployments.serve import serve_all

    if args.limit is not None and args.limit < 1:
        raise ValueError("--limit must be at least 1")
    serve_all(limit=args.limit)
    return 0
