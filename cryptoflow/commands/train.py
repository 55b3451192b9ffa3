"""``cryptoflow train``: train the model zoo in parallel on one window file."""

from __future__ import annotations

import argparse
import json
import sys

from cryptoflow.commands._common import add_runner_arguments


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the train options."""
    parser.add_argument("--symbol", default=None, help="market, e.g. BTC_USDT")
    parser.add_argument("--interval", default=None, help="candle interval, e.g. MINUTE_5")
    parser.add_argument("--models", default="all", help="all, or a comma list of zoo models")
    parser.add_argument("--epochs", type=int, default=100, help="epochs per model (default 100)")
    parser.add_argument("--batch-size", type=int, default=8, help="batch size (default 8)")
    parser.add_argument("--parallel", type=int, default=None,
                        help="models at once on CPU (default 1); on GPUs one per GPU")
    parser.add_argument("--devices", default="auto", help="auto | cpu | gpu:0,1 (default auto)")
    parser.add_argument("--data-dir", default=None, help="data directory (default ./data)")
    parser.add_argument("--dataset", default=None,
                        help="window file path or dataset id (default: newest for symbol/interval)")
    parser.add_argument("--run-id", default=None, help="continue or name this run")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--patience", type=int, default=None,
                        help="early stopping patience in epochs (default off)")
    parser.add_argument("--checkpoints", default="every", choices=["every", "best", "none"],
                        help="checkpoints to keep (default every epoch)")
    add_runner_arguments(parser)


def main(args: argparse.Namespace) -> int:
    """Validate the request, then run the ``train`` flow; print the run id and result paths."""
    from flows.runners import check_runner
    from flows.train import prepare_training, train
    from storage.runs import RunStore

    if args.dataset is None and (args.symbol is None or args.interval is None):
        raise ValueError("give --dataset, or --symbol and --interval")
    check_runner(args.task_runner, args.dask_address)
    names, _, _, layout = prepare_training(
        args.models, args.epochs, args.batch_size, args.parallel, args.devices, args.data_dir,
        args.dataset, args.symbol, args.interval,
    )
    run_id = train(
        models=names, epochs=args.epochs, batch_size=args.batch_size, parallel=args.parallel,
        devices=args.devices, dataset=args.dataset, symbol=args.symbol, interval=args.interval,
        data_dir=args.data_dir, run_id=args.run_id, seed=args.seed, patience=args.patience,
        checkpoints=args.checkpoints, progress_bar=sys.stderr.isatty(),
        task_runner=args.task_runner, dask_address=args.dask_address,
    )
    store = RunStore(layout.runs)
    print(json.dumps({"run_id": run_id, "run_dir": str(store.run_dir(run_id))}))
    return 0
