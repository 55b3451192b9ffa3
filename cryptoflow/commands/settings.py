"""``cryptoflow settings``: the effective settings, and where each value came from."""

from __future__ import annotations

import argparse
import json


def configure(parser: argparse.ArgumentParser) -> None:
    """``--json`` for a machine-readable list."""
    parser.add_argument("--json", action="store_true", help="print the settings as JSON")


def main(args: argparse.Namespace) -> int:
    """Print one line per setting: name, value, source (env variable or default)."""
    from storage.settings import describe

    rows = describe()
    if args.json:
        print(json.dumps(rows, default=str, indent=2))
        return 0
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        print(f"{r['name']:<{width}}  {r['value']!s:<40}  {r['source']:<36}  {r['description']}")
    return 0
