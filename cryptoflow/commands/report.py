"""``cryptoflow report``: select checkpoints, score against baselines, write the report."""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", dest="run_id", default=None, help="run id (default: the latest)")
    parser.add_argument(
        "--data-dir", default=None, help="data directory (default: $CRYPTOFLOW_DATA_DIR or ./data)"
    )
    parser.add_argument(
        "--compare",
        nargs=2,
        metavar=("SEED_RUN", "HONEST_RUN"),
        default=None,
        help="render the tutorial's table, a seed run and an honest run side by side",
    )


def main(args: argparse.Namespace) -> int:
    if args.compare:
        from flows.report import compare
        from storage.layout import DataLayout
        from storage.runs import RunStore
        from tasks.evaluation import resolve_run

        store = RunStore(DataLayout.at(args.data_dir).runs)
        for run in args.compare:
            resolve_run(store, run)

        print(compare(args.compare[0], args.compare[1], data_dir=args.data_dir))
        return 0
    from storage.layout import DataLayout
    from storage.runs import RunStore
    from tasks.evaluation import resolve_run

    # Bad input fails here, in one line, before a flow run is created.
    run_id = resolve_run(RunStore(DataLayout.at(args.data_dir).runs), args.run_id)
    from flows.report import report

    print(report(run_id=run_id, data_dir=args.data_dir))
    return 0
