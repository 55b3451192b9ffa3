"""Benchmark: the pipeline on an S3 data directory with 1 vs many earlier runs in it.

A run should cost what it touches, not the store's history (issue 14, target: wall time with
200 earlier runs <= 1.2 x with 1). moto's S3 server on loopback holds two data directories,
each seeded with N earlier runs (run.json, per model a history, spec, result and three
checkpoints, plus a report folder); then ``flows.pipeline.pipeline`` runs on
each from an empty local cache (a fresh host), against a real Prefect API and the in-process
replay server. Printed per data directory: wall time, S3 requests (moto's log), objects
listed-and-fetched; with ``--all`` also the old pull-everything (``CRYPTOFLOW_MIRROR_PULL=all``).

Usage: ``.venv/bin/python bench/history.py [--runs 200] [--all]``.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="bench-history-prefect-"))

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tasks.training.runtime import quiet_tensorflow_env  # noqa: E402

quiet_tensorflow_env()
DATA = Path(os.environ.get("CRYPTO_SHARED_DATA", REPO.parent / "shared" / "data"))
SOURCE = DATA / "poloniex-USDT_BTC-5m-2017-07-14--2017-08-09.csv"
START = "2017-07-15T00:00:00+00:00"
BUCKET = "bench-history"
AWS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
       "AWS_DEFAULT_REGION": "us-east-1"}
MODELS = ["cnn2_relu", "cnn3_leaky", "lstm_tanh_relu", "gru_tanh_leaky"]
_REQUEST = re.compile(r'"([A-Z]+) (\S+) HTTP/')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def seed(client, root: str, runs: int, checkpoint_kb: int) -> int:
    """``runs`` earlier runs under ``root``; the number of objects put."""
    blob = os.urandom(checkpoint_kb * 1024)
    keys: dict[str, bytes] = {}
    for i in range(runs):
        run = f"20250101T{i:06d}Z-earlier"
        keys[f"{root}/runs/{run}/run.json"] = b'{"created": "2025-%06d"}' % i
        for model in MODELS:
            base = f"{root}/runs/{run}/{model}"
            keys |= {f"{base}/history.csv": b"epoch,loss,val_loss,seconds\n1,1,1,1\n",
                     f"{base}/spec.json": b"{}", f"{base}/result.json": b"{}"}
            for epoch in (1, 2, 3):
                keys[f"{base}/checkpoints/epoch-{epoch:03d}-0.1.keras"] = blob
        keys[f"{root}/reports/{run}/report.html"] = b"<html/>" * 1000
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda kv: client.put_object(Bucket=BUCKET, Key=kv[0], Body=kv[1]),
                      keys.items()))
    return len(keys)


def count(log: Path, offset: int) -> tuple[int, int, int]:
    """(requests, list requests, object GETs) logged after ``offset``."""
    text = log.read_bytes()[offset:].decode(errors="replace")
    found = _REQUEST.findall(text)
    lists = sum(1 for m, t in found if m == "GET" and "list-type" in t)
    gets = sum(1 for m, t in found if m == "GET" and "list-type" not in t and t.count("/") > 1)
    return len(found), lists, gets


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200, help="earlier runs (200)")
    parser.add_argument("--checkpoint-kb", type=int, default=64)
    parser.add_argument("--days", type=float, default=3.0)
    parser.add_argument("--all", action="store_true", help="also time CRYPTOFLOW_MIRROR_PULL=all")
    parser.add_argument("--repeat", type=int, default=2,
                        help="times each case runs, alternating (the fastest is kept; 2)")
    args = parser.parse_args()
    if not SOURCE.is_file():
        print(f"skipped: {SOURCE} not found (set CRYPTO_SHARED_DATA)")
        return 0
    import boto3
    import pandas as pd
    from prefect.testing.utilities import prefect_test_harness

    from cryptoflow.replay import ReplayServer
    from flows.pipeline import pipeline
    from storage.recorded import load_recorded

    os.environ.update(AWS)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    os.environ["AWS_ENDPOINT_URL"] = url
    tmp = Path(tempfile.mkdtemp(prefix="bench-history-"))
    log = tmp / "moto.log"
    moto = subprocess.Popen([str(Path(sys.executable).parent / "moto_server"), "-H",
                             "127.0.0.1", "-p", str(port)], stdout=log.open("wb"),
                            stderr=subprocess.STDOUT)
    rows = []
    try:
        for _ in range(100):
            try:
                client = boto3.client("s3", endpoint_url=url)
                client.create_bucket(Bucket=BUCKET)
                break
            except Exception:  # noqa: BLE001 - not up yet
                time.sleep(0.2)
        cases = [("1 earlier run", 1, "touched"), (f"{args.runs} earlier runs", args.runs,
                                                    "touched")] * args.repeat
        if args.all:
            cases.append((f"{args.runs} earlier runs, pull all", args.runs, "all"))
        now_ms = int(pd.Timestamp(START).value // 1_000_000 + args.days * 86_400_000)
        settings = {"symbols": ["BTC_USDT"], "intervals": ["MINUTE_5"], "past": 32, "future": 4,
                    "models": ["cnn2_relu"], "epochs": 1, "batch_size": 128, "parallel": 1,
                    "patience": None, "seed": 0}
        with ReplayServer(load_recorded(SOURCE), now_ms=now_ms) as replay, \
                prefect_test_harness(server_startup_timeout=180):
            # Warm-up (imports, the first flow run), not timed: the cases then compare alike.
            os.environ["CRYPTOFLOW_CACHE_DIR"] = str(tmp / "cache-warmup")
            pipeline(**settings, start=START, base_url=replay.url,
                     data_dir=f"s3://{BUCKET}/warmup/data")
            for n, (label, runs, mode) in enumerate(cases):
                root = f"case{n}/data"
                objects = seed(client, root, runs, args.checkpoint_kb)
                os.environ["CRYPTOFLOW_CACHE_DIR"] = str(tmp / f"cache{n}")  # a fresh host
                os.environ["CRYPTOFLOW_MIRROR_PULL"] = mode
                offset = log.stat().st_size
                t = time.perf_counter()
                pipeline(**settings, start=START, base_url=replay.url,
                         data_dir=f"s3://{BUCKET}/{root}")
                wall = time.perf_counter() - t
                time.sleep(0.5)
                rows.append((label, objects, wall, *count(log, offset)))
    finally:
        moto.terminate()
        moto.wait(timeout=30)
    print(f"pipeline on an S3 data dir (moto), {args.days:g} days, 1 model, 1 epoch, cold cache")
    print(f"  {'case':32} {'objects':>8} {'wall s':>8} {'requests':>9} {'lists':>6} {'GETs':>6}")
    for label, objects, wall, requests, lists, gets in rows:
        print(f"  {label:32} {objects:8d} {wall:8.1f} {requests:9d} {lists:6d} {gets:6d}")
    best = {label: min(r[2] for r in rows if r[0] == label) for label, *_ in rows}
    ratio = best[f"{args.runs} earlier runs"] / best["1 earlier run"]
    print(f"  fastest of {args.repeat}: " + ", ".join(f"{k} {v:.1f} s" for k, v in best.items()))
    print(f"  wall time ratio {args.runs} vs 1 earlier runs: {ratio:.2f} x (target <= 1.2 x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
