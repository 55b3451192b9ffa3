"""Benchmark: a long backfill through the replay with every fault kind, nothing lost.

Backfills the recorded Poloniex 30-minute series (42,010 candles, 2015-02 .. 2017-07, 85 pages)
through an in-process replay server that faults every second candle request, cycling through
every kind it injects (429, a one-day ``429-long`` Retry-After, 500, busy, reset, slow,
truncated, malformed, empty and short pages, a still-open last row), with the real ``ingest``
flow (temporary Prefect API, real Parquet store). Prints the faults injected, candles lost,
duplicated and changed against the source (candle by candle: all must be 0) and the wall time,
beside a fault-free backfill of the same series (the baseline of the ratio). Bounded: each
backfill must finish within ``--limit`` seconds, else it fails.

Run: ``.venv/bin/python bench/fault_matrix.py [--data FILE] [--interval I] [--spacing N]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "ERROR")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="cryptoflow-bench-prefect-"))

FILE = "poloniex-USDT_BTC-30m-2015-02-19--2017-07-13.csv"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help=f"recorded file (default {FILE})")
    parser.add_argument("--interval", default="MINUTE_30", help="its interval (MINUTE_30)")
    parser.add_argument("--spacing", type=int, default=2, help="fault every Nth request (2)")
    parser.add_argument("--limit", type=float, default=600, help="seconds per backfill (600)")
    args = parser.parse_args()

    from prefect.testing.utilities import prefect_test_harness

    from storage.recorded import load_recorded
    from tests.support.fault_matrix import KINDS, run_matrix
    from tests.support.paths import shared_data_dir

    path = args.data or shared_data_dir() / FILE
    if not path.exists():
        print(f"fault_matrix: {path} not found (set CRYPTO_SHARED_DATA); skipped")
        return 0
    source = load_recorded(path, interval=args.interval)
    with prefect_test_harness(server_startup_timeout=120), tempfile.TemporaryDirectory() as tmp:
        clean = run_matrix(source, Path(tmp) / "clean", spacing=10**9, limit_s=args.limit,
                           interval=args.interval)  # fmt: skip
        faulted = run_matrix(source, Path(tmp) / "faulted", spacing=args.spacing,
                             limit_s=args.limit, interval=args.interval)  # fmt: skip
    print(f"fault matrix: {len(source):,} candles of {path.name}, {faulted.pages} pages")
    injected = ", ".join(f"{k} x{faulted.faults.get(k, 0)}" for k in KINDS)
    print(f"  faults injected: {sum(faulted.faults.values())} ({injected})")
    print(f"  requests: {faulted.requests} (fault-free: {clean.requests})")
    for name, r in (("faulted", faulted), ("fault-free", clean)):
        print(f"  {name}: lost {r.lost}, duplicated {r.duplicated}, changed {r.changed}, "
              f"extra {r.extra}; wall {r.wall_s:.1f} s")  # fmt: skip
    print(f"  wall time ratio faulted / fault-free: {faulted.wall_s / clean.wall_s:.2f}")
    missing_kinds = [k for k in KINDS if not faulted.faults.get(k)]
    ok = faulted.exact and clean.exact and not missing_kinds
    if missing_kinds:
        print(f"  kinds never injected: {missing_kinds} (a longer series or smaller --spacing)")
    print("  OK: nothing lost, nothing duplicated" if ok else "  FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
