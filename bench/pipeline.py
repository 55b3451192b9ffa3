"""Benchmark: the pipeline's orchestration overhead, and a warm re-run with no new candles.

One run, one data set, one machine state:

* **direct** — the stage functions without Prefect: the Poloniex client paging into the candle
  store, ``cut_windows_task.fn``, ``run_worker`` (the same one-process-per-model worker) on the
  same CPU slots, and the report's evaluate/render/write functions;
* **cold** — ``flows.pipeline.pipeline`` on an empty data directory, against a real Prefect API;
* **warm** — the same flow again with no new candles (caches: windows reused, training Cached,
  report up to date).

Targets (issue 6): cold/direct - 1 <= 20 %, warm/cold <= 10 %. Data: the recorded Poloniex
5-minute candles served by the in-process replay server (``$CRYPTO_SHARED_DATA`` or
``../shared/data``). Usage: ``.venv/bin/python bench/pipeline.py [--days 10] [--epochs 3]``.
"""

from __future__ import annotations

import argparse
import os
import queue
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="bench-pipeline-prefect-"))

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tasks.training.runtime import quiet_tensorflow_env  # noqa: E402

quiet_tensorflow_env()
DATA = Path(os.environ.get("CRYPTO_SHARED_DATA", REPO.parent / "shared" / "data"))
SOURCE = DATA / "poloniex-USDT_BTC-5m-2017-07-14--2017-08-09.csv"
START = "2017-07-15T00:00:00+00:00"
MODELS = ["cnn2_relu", "cnn3_leaky", "lstm_tanh_relu", "gru_tanh_leaky"]


def settings(args: argparse.Namespace) -> dict:
    return {"symbols": ["BTC_USDT"], "intervals": ["MINUTE_5"], "past": args.past,
            "future": args.future, "models": MODELS, "epochs": args.epochs,
            "batch_size": args.batch_size, "parallel": 2, "patience": None, "seed": 0}


def direct(url: str, data_dir: Path, s: dict) -> str:
    """Every stage's own functions, in order, no Prefect anywhere."""
    import pandas as pd

    from flows.pipeline import training_run_id
    from storage.candles import CandleStore
    from storage.layout import DataLayout
    from storage.runs import RunStore
    from tasks.evaluation import evaluate_run_task
    from tasks.poloniex.client import PoloniexClient
    from tasks.poloniex.planning import page_ranges
    from tasks.report.files import write_report_task
    from tasks.report.render import render_report_task
    from tasks.training.slots import available_cores, detect_gpus, plan_slots
    from tasks.training.worker import run_worker
    from tasks.windows import WindowSpec
    from tasks.windows.dataset import cut_windows_task, window_dataset_id

    layout = DataLayout.at(data_dir)
    store = CandleStore(layout.candles)
    symbol, interval = s["symbols"][0], s["intervals"][0]
    start_ms = int(pd.Timestamp(START).value // 1_000_000)
    with PoloniexClient(url, max_requests_per_second=0) as client:
        now = client.server_time_ms()
        for lo, hi in page_ranges(start_ms, now, interval):
            page = client.fetch_candles(symbol, interval, lo, hi)
            store.append(symbol, interval, page, server_now_ms=now)
    spec = WindowSpec(past=s["past"], future=s["future"])
    fingerprint = store.fingerprint(symbol, interval)
    ds_id = window_dataset_id(symbol, interval, spec, fingerprint)
    summary = cut_windows_task.fn(symbol, interval, spec.to_dict(), ds_id, fingerprint,
                                  str(layout.root))
    run_id = training_run_id(summary["path"], s["models"], s["epochs"], s["batch_size"],
                             s["seed"], s["patience"])
    runs = RunStore(layout.runs)
    runs.write_run(run_id, {"dataset_path": summary["path"], "dataset_id": ds_id,
                            "models": s["models"], "epochs": s["epochs"]})
    slots: queue.Queue = queue.Queue()
    for slot in plan_slots("cpu", s["parallel"], available_cores(), detect_gpus()):
        slots.put(slot)

    def one(model: str) -> dict:
        slot = slots.get()
        try:
            job = {"kind": "train", "dataset_path": summary["path"], "model": model,
                   "run_dir": str(runs.model_dir(run_id, model)), "epochs": s["epochs"],
                   "batch_size": s["batch_size"], "seed": s["seed"], "patience": s["patience"],
                   "checkpoints": "every"}
            return run_worker(job, slot)
        finally:
            slots.put(slot)

    with ThreadPoolExecutor(s["parallel"]) as pool:
        list(pool.map(one, s["models"]))
    evaluation = evaluate_run_task.fn(str(layout.root), run_id)
    rendered = render_report_task.fn(evaluation, None, None)
    return write_report_task.fn(str(layout.root), rendered)["report_html"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=float, default=10.0, help="days of candles (10)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--past", type=int, default=128)
    parser.add_argument("--future", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    if not SOURCE.is_file():
        print(f"skipped: {SOURCE} not found (set CRYPTO_SHARED_DATA)")
        return 0
    import pandas as pd
    from prefect.testing.utilities import prefect_test_harness

    from cryptoflow.replay import ReplayServer
    from flows.pipeline import pipeline
    from storage.recorded import load_recorded

    s = settings(args)
    now_ms = int(pd.Timestamp(START).value // 1_000_000 + args.days * 86_400_000)
    with tempfile.TemporaryDirectory() as tmp, ReplayServer(
        load_recorded(SOURCE), now_ms=now_ms
    ) as replay, prefect_test_harness(server_startup_timeout=180):
        t = time.perf_counter()
        direct(replay.url, Path(tmp) / "direct", s)
        t_direct = time.perf_counter() - t
        flow_dir = str(Path(tmp) / "flow")
        t = time.perf_counter()
        pipeline(**s, start=START, base_url=replay.url, data_dir=flow_dir)
        t_cold = time.perf_counter() - t
        t = time.perf_counter()
        pipeline(**s, start=START, base_url=replay.url, data_dir=flow_dir)
        t_warm = time.perf_counter() - t
    overhead = t_cold / t_direct - 1
    print(f"pipeline benchmark: {args.days:g} days of 5-min candles, {len(MODELS)} models, "
          f"{args.epochs} epochs, N={args.past} K={args.future}, batch {args.batch_size}")
    print(f"  direct (no Prefect)   {t_direct:8.1f} s")
    print(f"  pipeline, cold        {t_cold:8.1f} s   overhead {overhead:+.1%}  (target <= +20%)")
    print(f"  pipeline, warm        {t_warm:8.1f} s   warm/cold {t_warm / t_cold:.1%}"
          "  (target <= 10%)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
