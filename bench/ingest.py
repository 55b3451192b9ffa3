"""Benchmark: backfill the 280,652-candle Bitfinex 5-minute series through the replay server.

The replay server runs as its own process (``cryptoflow replay``, as the exchange would be), the
rate limit is off, the Prefect API is a temporary local one. Figures, all from this run:

* ``floor``: the bare client fetching every page in order, no Prefect, no store (the cost of
  HTTP + JSON + validation alone): the baseline of the ratios;
* ``ingest flow``: the real ``ingest`` flow end to end (server time, month batches, per-page
  retries, ordered commits to the Parquet store, gaps, artifact, event) with its default of
  4 pages in flight, then with 1; target >= 50,000 candles/s and peak RSS <= 500 MB;
* ``task per page``: the design we did not take (one Prefect task run per 500-candle page, a
  commit per month), on the first months only, to show what a task run per page costs.

Then, when ``bench/ingest_append.py`` exists, its figures (append cost vs store size).
Run: ``.venv/bin/python bench/ingest.py [--data DIR] [--skip-append]``.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="cryptoflow-bench-prefect-"))

from storage.schema import to_epoch_ms  # noqa: E402

FILE = "bitfinex-BTCUSD-5m-2015--2017.csv.gz"
START = "2015-01-01"
TARGET_RATE = 50_000
TARGET_RSS_MB = 500
PER_PAGE_MONTHS = 3


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def start_replay(path: Path) -> tuple[subprocess.Popen, str]:
    """``cryptoflow replay --data path`` in its own process; returns (process, url)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "cryptoflow.cli", "replay", "--data", str(path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline() if proc.stdout else ""
    if not line.startswith("replay: "):
        proc.kill()
        raise SystemExit(f"replay server did not start: {line!r}")
    return proc, line.split()[1]


def run_floor(url: str) -> tuple[int, float]:
    """All pages through the bare client, in order (candles, seconds)."""
    from tasks.poloniex.client import PoloniexClient
    from tasks.poloniex.planning import page_ranges

    with PoloniexClient(url, max_requests_per_second=0) as client:
        began = time.perf_counter()
        now = client.server_time_ms()
        start = to_epoch_ms(START)
        n = sum(
            len(client.fetch_candle_arrays("BTC_USDT", "MINUTE_5", a, b)["open_time"])
            for a, b in page_ranges(start, now, "MINUTE_5")
        )
        return n, time.perf_counter() - began


def _cpu_s(pid: int | None = None) -> float:
    """User + system CPU seconds of this process, or of process ``pid``."""
    if pid is None:
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime
    import psutil

    t = psutil.Process(pid).cpu_times()
    return t.user + t.system


def run_flow(url: str, data_dir: Path, in_flight: int) -> tuple[int, float]:
    """The ingest flow, end to end, into an empty store (candles added, seconds)."""
    from flows.ingest import ingest

    began = time.perf_counter()
    out = ingest(
        base_url=url, data_dir=str(data_dir), start=START, max_requests_per_second=0,
        max_in_flight=in_flight, progress=False,
    )  # fmt: skip
    return out[0]["added"], time.perf_counter() - began


def run_task_per_page(url: str, data_dir: Path, months: int) -> tuple[int, float]:
    """One Prefect task run per page, a commit per month, for the first ``months`` months."""
    from prefect import flow, task
    from prefect.cache_policies import NO_CACHE

    from storage.candles import CandleStore
    from tasks.poloniex.client import PoloniexClient
    from tasks.poloniex.pages import candles_frame
    from tasks.poloniex.planning import plan_batches

    @task(retries=4, retry_delay_seconds=[1, 4, 15, 60], cache_policy=NO_CACHE,
          persist_result=False)  # fmt: skip
    def fetch_page(client: PoloniexClient, a: int, b: int) -> dict:
        return client.fetch_candle_arrays("BTC_USDT", "MINUTE_5", a, b)

    @flow(name="bench-task-per-page")
    def per_page() -> int:
        store = CandleStore(data_dir / "candles")
        with PoloniexClient(url, max_requests_per_second=0) as client:
            now = client.server_time_ms()
            added = 0
            for batch in plan_batches(to_epoch_ms(START), now, "MINUTE_5")[:months]:
                pages = [fetch_page(client, a, b) for a, b in batch]
                added += store.append("BTC_USDT", "MINUTE_5", candles_frame(pages),
                                      server_now_ms=now).added  # fmt: skip
            return added

    began = time.perf_counter()
    n = per_page()
    return n, time.perf_counter() - began


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--skip-append", action="store_true", help="skip ingest_append.py")
    args = parser.parse_args(argv)
    path = Path(os.environ.get("CRYPTO_SHARED_DATA", args.data)) / FILE
    if not path.exists():
        print(f"skip: {path} not found (set CRYPTO_SHARED_DATA)")
        return 0

    from prefect.testing.utilities import prefect_test_harness

    work = Path(tempfile.mkdtemp(prefix="cryptoflow-bench-ingest-"))
    replay, url = start_replay(path)
    try:
        with prefect_test_harness(server_startup_timeout=120):
            from flows.ingest import ingest

            # warm-up: Prefect's first flow run pays for imports and API set-up
            ingest(base_url=url, data_dir=str(work / "warm"), start="2017-12-30",
                   max_requests_per_second=0, progress=False)  # fmt: skip
            rss_before = _peak_rss_mb()
            cpu_client, cpu_server = _cpu_s(), _cpu_s(replay.pid)
            n_flow, t_flow = run_flow(url, work / "flow4", in_flight=4)
            cpu_client, cpu_server = _cpu_s() - cpu_client, _cpu_s(replay.pid) - cpu_server
            rss_flow = _peak_rss_mb()
            n_flow1, t_flow1 = run_flow(url, work / "flow1", in_flight=1)
            n_floor, t_floor = run_floor(url)
            n_page, t_page = run_task_per_page(url, work / "per-page", PER_PAGE_MONTHS)
    finally:
        replay.terminate()
        replay.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)

    floor_rate = n_floor / t_floor
    print(f"\nIngest backfill: {FILE} via the replay server ({url}), rate limit off")
    print(f"{'variant':44s} {'candles':>9s} {'seconds':>8s} {'candles/s':>10s} {'vs floor':>9s}")
    rows = [
        ("floor: bare client, 1 page at a time", n_floor, t_floor),
        ("ingest flow, 4 pages in flight (default)", n_flow, t_flow),
        ("ingest flow, 1 page in flight", n_flow1, t_flow1),
        (f"task run per page ({PER_PAGE_MONTHS} months only)", n_page, t_page),
    ]
    for name, n, t in rows:
        print(f"{name:44s} {n:9,d} {t:8.2f} {n / t:10,.0f} {n / t / floor_rate:8.2f}x")
    rate = n_flow / t_flow
    print(
        f"ingest flow: {rate:,.0f} candles/s (target >= {TARGET_RATE:,}: "
        f"{'met' if rate >= TARGET_RATE else 'NOT met'}); peak RSS {rss_flow:.0f} MB "
        f"(before the backfill {rss_before:.0f} MB; target <= {TARGET_RSS_MB}: "
        f"{'met' if rss_flow <= TARGET_RSS_MB else 'NOT met'})"
    )
    cpu_bound = n_flow / max(cpu_client, cpu_server)
    print(
        f"CPU of that run: ingest process {cpu_client:.2f} s, replay server {cpu_server:.2f} s "
        f"-> {cpu_bound:,.0f} candles/s when each has a free core (load average now "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs: wall times above include waiting "
        "for other processes)"
    )
    append_bench = ROOT / "bench" / "ingest_append.py"
    if append_bench.exists() and not args.skip_append:
        import importlib.util

        spec = importlib.util.spec_from_file_location("ingest_append", append_bench)
        module = importlib.util.module_from_spec(spec)
        assert spec.loader is not None
        spec.loader.exec_module(module)
        print()
        return int(module.main([]) or 0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
