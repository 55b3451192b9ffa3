"""``cryptoflow replay``: serve a recorded candle file as a Poloniex v3 API on 127.0.0.1."""

from __future__ import annotations

import argparse
import math
import sys


def _port(text: str) -> int:
    """A TCP port number, 0 (any free one) to 65535."""
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"a port from 0 (any free one) to 65535, got {text!r}")
    return port


def _seconds(text: str) -> float:
    """A finite, non-negative number of seconds."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"a number of seconds >= 0, got {text!r}")
    return value


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``cryptoflow replay``."""
    parser.add_argument(
        "--data",
        required=True,
        action="append",
        metavar="FILE",
        help="recorded candles: legacy Poloniex CSV, Bitfinex 1m/5m CSV(.gz) or a Parquet "
        "store folder (repeat to concatenate, e.g. several yearly files)",
    )
    parser.add_argument(
        "--symbol", default="BTC_USDT",
        help="market symbol served (BTC_USDT); a comma list serves the same candles under "
        "each symbol (several markets offline)",
    )
    parser.add_argument(
        "--interval", default=None, help="candle interval of the data (default: inferred)"
    )
    parser.add_argument(
        "--now", default=None,
        help="server clock, epoch ms or ISO, from 2000-01-01 (default: after the last candle)",
    )
    parser.add_argument(
        "--faults",
        default="",
        help="fault plan, e.g. '3:429,5-6:reset' (kinds: 429 429-long 500 busy reset slow "
        "truncated malformed empty short open; numbers count candle requests from 1)",
    )
    parser.add_argument("--port", type=_port, default=0, help="TCP port (default: any free one)")
    parser.add_argument(
        "--slow-seconds", type=_seconds, default=15.0, help="delay of a 'slow' fault (15)"
    )
    parser.add_argument(
        "--retry-after", type=_seconds, default=1.0, help="Retry-After of a '429' fault (1)"
    )


def main(args: argparse.Namespace) -> int:
    """Load the data, serve until Ctrl-C or SIGTERM (exit 0); prints the URL first."""
    import pandas as pd

    from cryptoflow.replay import ReplayServer
    from cryptoflow.replay.clock import parse_now
    from storage.recorded import load_recorded
    from storage.schema import validate_symbol

    now_ms = parse_now(args.now)  # bad input fails before the data is read
    symbols = list(dict.fromkeys(
        validate_symbol(s) for s in args.symbol.split(",") if s.strip()
    )) or ["BTC_USDT"]
    frames = [load_recorded(p, interval=args.interval, symbol=symbols[0]) for p in args.data]
    interval = args.interval or frames[0].attrs.get("interval")
    candles = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    candles = candles.sort_values("open_time").drop_duplicates("open_time", keep="first")
    server = ReplayServer(
        candles,
        symbol=symbols[0],
        interval=interval,
        now_ms=now_ms,
        faults=args.faults,
        port=args.port,
        retry_after=args.retry_after,
        slow_seconds=args.slow_seconds,
        markets={s: candles for s in symbols[1:]},
    )
    first, last = candles["open_time"].iloc[[0, -1]] if len(candles) else (None, None)
    print(
        f"replay: {server.url}  ({','.join(symbols)} {server.interval.value}, "
        f"{len(candles):,} candles "
        f"{first} .. {last}; clock {pd.Timestamp(server.now_ms, unit='ms', tz='UTC')})",
        flush=True,
    )
    print(
        f"  cryptoflow ingest --base-url {server.url} --symbol {','.join(symbols)} "
        f"--interval {server.interval.value}",
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("replay: stopped", file=sys.stderr)
    return 0
