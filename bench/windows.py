"""Benchmark: cutting windows into HDF5, ours vs the tutorial's approach, side by side.

Each case runs in its own subprocess (fresh interpreter) and reports its wall time (windowing +
writing, data already loaded) and its peak RSS (``ru_maxrss`` of that process, data load
included). Cases:

* ``tutorial``: the tutorial's script (MinMax on every row, PastSampler on the full arrays,
  ``h5py.create_dataset``), sliding, N=256, K=16, on the 280,652 Bitfinex 5-minute candles.
* ``seed``: ours, ``seed`` protocol with stride 1: the same windows and bytes as ``tutorial``.
* ``honest``: ours, the default protocol (float32, ms times) with ``drop_gaps=False`` so the
  same sliding windows are cut (the issue's ~305 MB of float32 windows); ``honest_gaps`` the
  true default, windows spanning gaps dropped (far fewer windows on Bitfinex).
* ``honest_1m``: ours on the 1.17 M Bitfinex 1-minute candles (full layout, gaps kept: the
  issue's ~1.27 GB of float32 windows), and ``compact_1m`` the compact layout;
* ``h5py_1m``: h5py alone writing the very bytes of ``honest_1m`` (same datasets, shapes,
  dtypes, chunks and gzip-1+shuffle filters), each dataset materialised before the clock starts
  and fsync'd inside it (ours fsyncs before its atomic rename);
  ``raw_1m`` the same bytes uncompressed and contiguous, and ``uncompressed_1m`` ours writing
  them uncompressed (``compress=False``), to compare like with like both ways.

Run: ``.venv/bin/python bench/windows.py`` (``--quick`` for a smaller smoke run, ``--repeat 2``
to interleave two runs of every case and keep the best time: the figures are noisy on a shared
machine, the uncompressed ones most, as they mostly measure the disk).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DATA = Path(os.environ.get("CRYPTO_SHARED_DATA", ROOT.parent / "shared" / "data"))
FILE_5M = DATA / "bitfinex-BTCUSD-5m-2015--2017.csv.gz"
FILES_1M = [DATA / f"bitfinex-BTCUSD-1m-{y}.csv.gz" for y in (2015, 2016, 2017)]
N, K = 256, 16


def load_5m(limit: int | None):
    """The Bitfinex 5-minute candles (the first ``limit`` when given), via the project's reader."""
    from storage.recorded import load_recorded

    candles = load_recorded(FILE_5M)
    return candles.iloc[:limit].reset_index(drop=True) if limit else candles


def load_1m(limit: int | None):
    """The three yearly Bitfinex 1-minute files as one series (the first ``limit``)."""
    from storage.recorded import load_recorded_files

    candles = load_recorded_files(FILES_1M)
    return candles.iloc[:limit].reset_index(drop=True) if limit else candles


# --- cases (each runs in a child process) ---------------------------------------------------------
def case_tutorial(out: Path, limit: int | None) -> dict:
    """The tutorial's script verbatim (tests/support/tutorial.py, the seed oracle)."""
    import pandas as pd

    from storage.schema import to_ms
    from tests.support.tutorial import tutorial_h5

    candles = load_5m(limit)  # the tutorial's frame: its column names, unix-second timestamps
    df = pd.DataFrame({"Timestamp": to_ms(candles["open_time"]) // 1000, "Close": candles["close"]})
    path = out / "tutorial.h5"
    t0 = time.perf_counter()
    tutorial_h5(df, path, N, K, sliding=True)
    wall = time.perf_counter() - t0
    import h5py

    with h5py.File(path, "r") as f:
        n_windows = int(f["inputs"].shape[0])
    return {"wall_s": wall, "file": str(path), "n_windows": n_windows}


def _ours(out: Path, candles, interval: str, compress: bool = True, **spec) -> dict:
    from tasks.windows import WindowSpec, write_windows

    t0 = time.perf_counter()
    spec_ = WindowSpec(past=N, future=K, **spec)
    summary = write_windows(candles, "BTC_USD", interval, spec_, out, compress=compress)
    return {
        "wall_s": time.perf_counter() - t0,
        "file": summary["path"],
        "n_windows": summary["n_windows"],
        "dropped_gaps": summary["dropped_gaps"],
    }


def case_seed(out: Path, limit: int | None) -> dict:
    return _ours(out, load_5m(limit), "MINUTE_5", protocol="seed", stride=1)


def case_honest(out: Path, limit: int | None) -> dict:
    return _ours(out, load_5m(limit), "MINUTE_5", drop_gaps=False)


def case_honest_gaps(out: Path, limit: int | None) -> dict:
    return _ours(out, load_5m(limit), "MINUTE_5")


def case_honest_1m(out: Path, limit: int | None) -> dict:
    return _ours(out, load_1m(limit), "MINUTE_1", drop_gaps=False)


def case_uncompressed_1m(out: Path, limit: int | None) -> dict:
    return _ours(out, load_1m(limit), "MINUTE_1", drop_gaps=False, compress=False)


def case_compact_1m(out: Path, limit: int | None) -> dict:
    return _ours(out, load_1m(limit), "MINUTE_1", layout="compact", drop_gaps=False)


def _h5py_alone(out: Path, limit: int | None, compress: bool) -> dict:
    """h5py writing the datasets of ``honest_1m`` byte for byte; only the writes are timed."""
    import h5py
    import numpy as np

    from storage.windows.writer import create_chunked
    from tasks.windows import WindowSpec, plan_windows

    spec = WindowSpec(past=N, future=K, drop_gaps=False)
    plan = plan_windows(load_1m(limit), "MINUTE_1", spec)
    a = plan.arrays
    plan_ds = [
        ("inputs", a.scaled, 0, N),
        ("outputs", a.scaled, N, K),
        ("input_times", a.times, 0, N),
        ("output_times", a.times, N, K),
        ("original_inputs", a.original, 0, N),
        ("original_outputs", a.original, N, K),
    ]
    path, wall, nbytes = out / "h5py.h5", 0.0, 0
    with h5py.File(path, "w") as f:
        for name, src, offset, length in plan_ds:
            data = src[a.starts[:, None] + np.arange(offset, offset + length)]  # not timed
            t0 = time.perf_counter()
            ds = create_chunked(f, name, data.shape, data.dtype, compress=compress)
            ds[...] = data
            f.flush()
            os.fsync(f.id.get_vfd_handle())  # ours fsyncs too (atomic write)
            wall += time.perf_counter() - t0
            nbytes += data.nbytes
            del data
    return {
        "wall_s": wall,
        "file": str(path),
        "n_windows": int(a.starts.size),
        "logical_bytes": nbytes,
    }


def case_h5py_1m(out: Path, limit: int | None) -> dict:
    return _h5py_alone(out, limit, compress=True)


def case_raw_1m(out: Path, limit: int | None) -> dict:
    return _h5py_alone(out, limit, compress=False)


CASES = {
    "tutorial": case_tutorial,
    "seed": case_seed,
    "honest": case_honest,
    "honest_gaps": case_honest_gaps,
    "honest_1m": case_honest_1m,
    "uncompressed_1m": case_uncompressed_1m,
    "compact_1m": case_compact_1m,
    "h5py_1m": case_h5py_1m,
    "raw_1m": case_raw_1m,
}


def child(name: str, limit: int | None) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-windows-") as tmp:
        result = CASES[name](Path(tmp), limit)
        result["file_bytes"] = Path(result.pop("file")).stat().st_size
        result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def run_case(name: str, limit: int | None) -> dict:
    os.sync()  # start each case with no dirty pages left by the previous one
    cmd = [sys.executable, __file__, "--case", name]
    if limit:
        cmd += ["--limit", str(limit)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=ROOT)
    if proc.returncode != 0:
        raise SystemExit(f"case {name} failed:\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    print(
        f"  {name:11s} wall {result['wall_s']:7.2f} s  peak RSS {result['peak_rss_mb']:7.0f} MB"
        f"  file {result['file_bytes'] / 1e6:8.1f} MB  windows {result['n_windows']:,}",
        flush=True,
    )
    return result


def run_cases(names: tuple[str, ...], limit: int | None, repeat: int) -> dict[str, dict]:
    """Run each case ``repeat`` times (interleaved); keep the fastest run and the largest RSS."""
    best: dict[str, dict] = {}
    for _ in range(max(1, repeat)):
        for name in names:
            result = run_case(name, limit)
            if name not in best:
                best[name] = result
            else:
                rss = max(best[name]["peak_rss_mb"], result["peak_rss_mb"])
                if result["wall_s"] < best[name]["wall_s"]:
                    best[name] = result
                best[name]["peak_rss_mb"] = rss
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=sorted(CASES))
    parser.add_argument("--limit", type=int, default=None, help="first rows only (smoke run)")
    parser.add_argument("--quick", action="store_true", help="50k 5m / 200k 1m candles")
    parser.add_argument(
        "--repeat", type=int, default=1, help="run the cases R times, interleaved; keep the best"
    )
    args = parser.parse_args()
    if args.case:
        child(args.case, args.limit)
        return 0
    for path in (FILE_5M, *FILES_1M):
        if not path.exists():
            print(f"skipped: real data {path} not found (set CRYPTO_SHARED_DATA)")
            return 0
    lim5, lim1 = (50_000, 200_000) if args.quick else (None, None)
    print(f"5-minute Bitfinex candles ({lim5 or 280_652:,}), N={N}, K={K}, sliding:")
    r = run_cases(("tutorial", "seed", "honest", "honest_gaps"), lim5, args.repeat)
    for name in ("seed", "honest", "honest_gaps"):
        print(
            f"  {name} / tutorial: time {r[name]['wall_s'] / r['tutorial']['wall_s']:.2f}x "
            f"(target <= 0.5x), peak RSS "
            f"{r[name]['peak_rss_mb'] / r['tutorial']['peak_rss_mb']:.2f}x (target <= 0.25x)"
        )
    print(f"1-minute Bitfinex candles ({lim1 or 1_165_149:,}), N={N}, K={K}, honest:")
    names = ("honest_1m", "h5py_1m", "raw_1m", "uncompressed_1m", "compact_1m")
    r1 = run_cases(names, lim1, args.repeat)
    ours, alone, raw = r1["honest_1m"], r1["h5py_1m"], r1["raw_1m"]
    print(
        f"  logical bytes written: {alone['logical_bytes'] / 1e9:.2f} GB "
        f"({ours['n_windows']:,} windows)"
    )
    print(f"  ours peak RSS {ours['peak_rss_mb']:.0f} MB (target <= 1024 MB)")
    print(
        f"  ours / h5py alone, same datasets and filters: {ours['wall_s'] / alone['wall_s']:.2f}x"
        f" (target <= 2x)"
    )
    print(
        f"  ours / h5py alone uncompressed: {ours['wall_s'] / raw['wall_s']:.2f}x "
        f"(that file is {raw['file_bytes'] / ours['file_bytes']:.0f}x larger)"
    )
    u = r1["uncompressed_1m"]
    print(
        f"  ours with compress=False / h5py alone uncompressed: {u['wall_s'] / raw['wall_s']:.2f}x"
        f" (target <= 2x), peak RSS {u['peak_rss_mb']:.0f} MB"
    )
    c = r1["compact_1m"]
    print(
        f"  compact layout: {c['file_bytes'] / 1e6:.1f} MB in {c['wall_s']:.2f} s "
        f"({ours['file_bytes'] / c['file_bytes']:.0f}x smaller than full, "
        f"{raw['file_bytes'] / c['file_bytes']:.0f}x smaller than uncompressed windows)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
