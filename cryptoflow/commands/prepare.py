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
    from tasks.windows.reader import open_dataset

    # Bad parameters fail here, in one line, before a flow run starts.
    params = validated(prepare, given(args))
    path = prepare(**params)
    with open_dataset(path) as ds:
        counts = {name: ds.split_size(name) for name in ("train", "validation", "test")}
        dropped = ds.attrs.get("counts", {}).get("dropped_gaps", 0)
    print(path)
    print(" ".join(f"{k}={v}" for k, v in counts.items()) + f" dropped_gaps={dropped}")
    return 0
