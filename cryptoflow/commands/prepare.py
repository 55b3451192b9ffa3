"""``cryptoflow prepare``: cut stored candles into training windows and print where they went."""

from __future__ import annotations

import argparse

from cryptoflow.options import add_flow_options, given, validated


def configure(parser: argparse.ArgumentParser) -> None:
    """The prepare flow's parameters as options."""
    from flows.prepare import prepare

    add_flow_options(parser, prepare)


def main(args: argparse.Namespace) -> int:
    """Run the prepare flow; print the file path and the window counts per split."""
    from flows.prepare import prepare
    from storage.windows import WindowStore

    # Bad parameters fail here, in one line, before a flow run starts.
    params = validated(prepare, given(args))
    path = prepare(**params)
    counts = WindowStore.split_counts(path)
    print(path)
    print(" ".join(f"{k}={v}" for k, v in counts.items()))
    return 0
