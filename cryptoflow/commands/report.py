"""``cryptoflow report``: select checkpoints, score against baselines, write the report."""

from __future__ import annotations

import argparse

from cryptoflow.options import add_flow_options, given, validated


def configure(parser: argparse.ArgumentParser) -> None:
    """The report flow's parameters (``--run`` as ``--run-id``), plus ``--compare``."""
    from flows.report import report

    add_flow_options(parser, report, aliases={"run_id": "--run"})
    parser.add_argument(
        "--compare", nargs=2, metavar=("SEED_RUN", "HONEST_RUN"), default=None,
        help="instead: the tutorial's table, a seed run and an honest run side by side "
        "(the compare-protocols flow)",
    )
    parser.add_argument(
        "--walk-forward", nargs="+", metavar="FOLD_RUN", default=None,
        help="instead: the walk-forward verdict over these fold runs, oldest fold first "
        "(each is reported first if it has no report yet)",
    )


def main(args: argparse.Namespace) -> int:
    """Report one run (or compare two, or set walk-forward folds side by side); print the path
    of the HTML written."""
    from flows.report import compare, report, walk_forward
    from storage.layout import DataLayout
    from storage.reports import ReportStore
    from storage.runs import RunStore
    from tasks.evaluation import resolve_run

    params = validated(report, given(args))
    store = RunStore(DataLayout.at(params["data_dir"]).runs)
    if args.compare:
        seed_run, honest_run = (resolve_run(store, run) for run in args.compare)
        print(compare(seed_run, honest_run, data_dir=params["data_dir"]))
        return 0
    if args.walk_forward:
        runs = [resolve_run(store, run) for run in args.walk_forward]
        reports = ReportStore(DataLayout.at(params["data_dir"]).reports)
        for run in runs:
            if reports.read_leaderboard(run) is None:
                report(run_id=run, data_dir=params["data_dir"])
        print(walk_forward(runs, data_dir=params["data_dir"]))
        return 0
    # Bad input fails here, in one line, before a flow run is created.
    params["run_id"] = resolve_run(store, params["run_id"])
    print(report(**params))
    return 0
