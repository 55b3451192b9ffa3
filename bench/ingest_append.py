"""Benchmark: appending one 500-candle page costs the same on a 1.17 M-candle store as on 10 k.

Builds, in a temporary folder, a candle store of the three Bitfinex 1-minute files (1.17 M candles,
2015-2017) and a store of the last 10 k of those candles, then times appending the same new
500-candle page to each (median of several reps, the touched partition restored between reps).
For ratio it also times what freqtrade does on every update: read the whole store, concatenate,
write one file. Run: ``.venv/bin/python bench/ingest_append.py [--reps 7] [--data DIR]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from storage.atomic import atomic_path  # noqa: E402
from storage.candles import CandleStore  # noqa: E402
from storage.candles.parquet import ARROW_SCHEMA, COMPRESSION  # noqa: E402
from storage.recorded import load_recorded_files  # noqa: E402
from storage.schema import Interval  # noqa: E402

SYMBOL = "BTC_USD"
M1 = Interval.MINUTE_1
PAGE = 500
SMALL = 10_000


def load_bitfinex_1m(data_dir: Path) -> pd.DataFrame:
    """The three Bitfinex 1-minute files (1,165,149 rows) in the candle schema."""
    paths = [data_dir / f"bitfinex-BTCUSD-1m-{year}.csv.gz" for year in (2015, 2016, 2017)]
    for path in paths:
        if not path.exists():
            raise SystemExit(f"missing {path}: set --data or CRYPTO_SHARED_DATA")
    return load_recorded_files(paths, interval=M1)


def timed(fn: Callable[[], object], reset: Callable[[], None], reps: int) -> list[float]:
    """Wall seconds of ``fn`` over ``reps`` runs, calling ``reset`` (untimed) before each."""
    out = []
    for _ in range(reps):
        reset()
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def snapshot_series(store: CandleStore) -> Callable[[], None]:
    """A reset function restoring the series' partition files to their current bytes."""
    series = store.series_dir(SYMBOL, M1)
    saved = {p: p.read_bytes() for p in store.partitions(SYMBOL, M1)}

    def reset() -> None:
        for p in store.partitions(SYMBOL, M1):
            if p not in saved:
                p.unlink()
        for p, data in saved.items():
            if p.read_bytes() != data:
                p.write_bytes(data)
        assert len(store.partitions(SYMBOL, M1)) == len(saved), series

    return reset


def whole_store_rewrite(store: CandleStore, page: pd.DataFrame, target: Path) -> None:
    """freqtrade's update: read everything, concatenate the page, write one file."""
    old = store.load(SYMBOL, M1)
    merged = pd.concat([old, page], ignore_index=True)
    merged = merged.drop_duplicates("open_time", keep="first").sort_values("open_time")
    table = pa.Table.from_pandas(merged, schema=ARROW_SCHEMA, preserve_index=False)
    with atomic_path(target) as tmp:
        pq.write_table(table, tmp, compression=COMPRESSION)


def run_scenario(name: str, candles: pd.DataFrame, cut: int, root: Path, reps: int) -> dict:
    """Time one page append at position ``cut`` on the large and the small store."""
    page = candles.iloc[cut : cut + PAGE].reset_index(drop=True)
    large = CandleStore(root / name / "large")
    small = CandleStore(root / name / "small")
    t0 = time.perf_counter()
    large.append(SYMBOL, M1, candles.iloc[:cut])
    build_s = time.perf_counter() - t0
    small.append(SYMBOL, M1, candles.iloc[cut - SMALL : cut])
    stores = {"large": large, "small": small}
    resets = {label: snapshot_series(store) for label, store in stores.items()}
    samples: dict[str, list[float]] = {"large": [], "small": []}
    for _ in range(reps):  # interleaved, so drift in machine load hits both alike
        for label, store in stores.items():
            samples[label] += timed(lambda s=store: s.append(SYMBOL, M1, page), resets[label], 1)
    results: dict = {}
    for label, store in stores.items():
        r = store.append(SYMBOL, M1, page)
        assert r.added == 0, "the timed append did not store the page"
        resets[label]()
        check = store.append(SYMBOL, M1, page)
        assert check.added == PAGE, check
        results[label] = statistics.median(samples[label])
        results[f"{label}_months"] = check.months_written
        results[f"{label}_rows"] = sum(
            pq.read_metadata(p).num_rows for p in store.partitions(SYMBOL, M1)
        )
    target = root / name / "freqtrade" / "BTC_USD-1m.parquet"
    rewrite = timed(
        lambda: whole_store_rewrite(large, page, target), lambda: None, max(3, reps // 2)
    )
    results["rewrite"] = statistics.median(rewrite)
    results["build_s"] = build_s
    month_rows = pq.read_metadata(large.partitions(SYMBOL, M1)[-1]).num_rows
    results["touched_month_rows"] = month_rows
    for op in ("last_open_time", "fingerprint", "gaps", "load"):
        fn = getattr(large, op)
        results[op] = statistics.median(
            timed(lambda f=fn: f(SYMBOL, M1), lambda: None, 3 if op == "load" else reps)
        )
    return results


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the figures as ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=7)
    default_data = os.environ.get(
        "CRYPTO_SHARED_DATA", str(Path(__file__).resolve().parents[2] / "shared" / "data")
    )
    parser.add_argument("--data", type=Path, default=Path(default_data))
    args = parser.parse_args(argv)

    candles = load_bitfinex_1m(args.data)
    n = len(candles)
    times = candles["open_time"]
    # mid-month: the page lands in a half-full month; month-end: in the fullest month (worst case)
    scenarios = {
        "mid-month": int(times.searchsorted(pd.Timestamp("2017-12-15", tz="UTC"))),
        "month-end": n - PAGE,
    }
    print(
        f"candles: {n:,} Bitfinex BTCUSD 1m; page: {PAGE}; small store: {SMALL:,}; "
        f"reps: {args.reps}"
    )
    worst = 0.0
    with tempfile.TemporaryDirectory(prefix="cryptoflow-bench-") as tmp:
        for name, cut in scenarios.items():
            r = run_scenario(name, candles, cut, Path(tmp), args.reps)
            ratio = r["large"] / r["small"]
            worst = max(worst, ratio)
            print(
                f"\n[{name}] page starts {candles.open_time.iloc[cut]}; touched month holds "
                f"{r['touched_month_rows']:,} rows after the append (large store)\n"
                f"  build large store ({r['large_rows']:,} rows): {r['build_s']:.1f} s\n"
                f"  append page, small store ({r['small_rows']:,} rows): {r['small'] * 1e3:.1f} ms"
                f"  months {r['small_months']}\n"
                f"  append page, large store: {r['large'] * 1e3:.1f} ms"
                f"  months {r['large_months']}\n"
                f"  whole-store rewrite (freqtrade style): {r['rewrite'] * 1e3:.0f} ms\n"
                f"  ratio large/small append: {ratio:.2f}x  (target <= 2x)\n"
                f"  ratio whole-store rewrite / large append: {r['rewrite'] / r['large']:.1f}x\n"
                f"  large store reads, as ratios to one large append: "
                f"last_open_time {r['last_open_time'] / r['large']:.3f}x, "
                f"fingerprint {r['fingerprint'] / r['large']:.2f}x, "
                f"gaps {r['gaps'] / r['large']:.1f}x, load all {r['load'] / r['large']:.1f}x "
                f"({r['last_open_time'] * 1e3:.1f} / {r['fingerprint'] * 1e3:.1f} / "
                f"{r['gaps'] * 1e3:.0f} / {r['load'] * 1e3:.0f} ms)"
            )
            shutil.rmtree(Path(tmp) / name)
    print(f"\nworst large/small ratio: {worst:.2f}x -> {'OK' if worst <= 2 else 'ABOVE TARGET'}")
    return 0 if worst <= 2 else 1


if __name__ == "__main__":
    raise SystemExit(main())
