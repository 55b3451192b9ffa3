"""``cryptoflow prepare``: cut stored candles into training windows and print where they went."""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the prepare options."""
    parser.add_argument("--symbol", required=True, help="market, e.g. BTC_USDT")
    parser.add_argument("--interval", required=True, help="candle interval, e.g. MINUTE_5")
    parser.add_argument(
        "--protocol",
        default="honest",
        choices=["seed", "honest"],
        help="seed = the tutorial exactly; honest (default) = no leakage",
    )
    parser.add_argument("--past", type=int, default=256, help="candles in (default 256)")
    parser.add_argument("--future", type=int, default=16, help="candles to forecast (default 16)")
    parser.add_argument(
        "--stride",
        type=int,
        default=None,
        help="window step (honest default 1; seed: 1 or past+future)",
    )
    parser.add_argument(
        "--features",
        default="close",
        help="comma list: open,high,low,close,volume_base,volume_quote,"
        "trade_count,log_return (default close)",
    )
    parser.add_argument("--scaler", default="minmax", choices=["minmax", "standard"])
    parser.add_argument(
        "--splits",
        default=None,
        help="comma fractions: train,validation,test (honest, default "
        "0.7,0.15,0.15) or train,validation (seed, 0.8,0.2)",
    )
    parser.add_argument(
        "--layout",
        default="full",
        choices=["full", "compact"],
        help="full (tutorial datasets) or compact (series + window starts)",
    )
    parser.add_argument(
        "--keep-gaps",
        action="store_true",
        help="honest: keep windows that span missing candles (default: drop and count them)",
    )
    parser.add_argument("--data-dir", default=None, help="data directory (default ./data)")


def _fractions(text: str | None) -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"splits: expected comma-separated fractions, got {text!r}") from None


def main(args: argparse.Namespace) -> int:
    """Run the prepare flow; print the file path and the window counts per split."""
    from storage.schema import Interval, validate_symbol
    from tasks.windows import WindowSpec, open_dataset

    params = {
        "symbol": validate_symbol(args.symbol),
        "interval": Interval.parse(args.interval).value,
        "protocol": args.protocol,
        "past": args.past,
        "future": args.future,
        "stride": args.stride,
        "features": [f for f in args.features.split(",") if f.strip()],
        "scaler": args.scaler,
        "splits": _fractions(args.splits),
        "layout": args.layout,
        "drop_gaps": False if args.keep_gaps else None,
    }
    # Bad parameters fail here, in one line, before a flow run starts.
    WindowSpec(**{k: v for k, v in params.items() if k not in ("symbol", "interval")})
    from flows.prepare import prepare

    path = prepare(**params, data_dir=args.data_dir)
    with open_dataset(path) as ds:
        counts = {name: ds.split_size(name) for name in ("train", "validation", "test")}
        dropped = ds.attrs.get("counts", {}).get("dropped_gaps", 0)
    print(path)
    print(" ".join(f"{k}={v}" for k, v in counts.items()) + f" dropped_gaps={dropped}")
    return 0
