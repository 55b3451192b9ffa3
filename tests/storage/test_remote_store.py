"""The data directory on S3 (moto's standalone server on 127.0.0.1) through ``storage.remote``.

Real processes throughout: ingest and prepare run as real Prefect flows in a child process whose
data directory is ``mirrored("s3://bucket/data")``; a second child with an empty cache (another
host's view) reads the same candles and windows back; a child killed with SIGKILL in the middle
of a multipart upload leaves no partial object (the old object, or none, stays visible).
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from storage.remote import RemoteDataDir, is_remote, mirrored, safe_relative
from tests.support.paths import REPO_ROOT, shared_file
from tests.support.servers import (
    VENV_BIN,
    background,
    base_env,
    free_port,
    replay_process,
    wait_http,
)

POLONIEX_5M = "poloniex-USDT_BTC-5m-2017-07-14--2017-08-09.csv"
NOW_MS = int(pd.Timestamp("2017-07-23T00:00:00Z").value // 1_000_000)
BUCKET = "cryptoflow-test"
AWS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
       "AWS_DEFAULT_REGION": "us-east-1"}


# ---------------------------------------------------------------- fast: rules


def test_url_and_relative_path_rules(tmp_path):
    assert is_remote("s3://b/p") and is_remote("gs://b") and is_remote("memory://x")
    assert not is_remote("./data") and not is_remote("/abs/data") and not is_remote(None)
    assert not is_remote("file:///tmp/x")
    assert safe_relative("candles/a/part.parquet") == "candles/a/part.parquet"
    for bad in ("", "/etc/passwd", "../x", "a/../../x", "a//b", "./a", "a\\b", "a/\x00b", "a/."):
        with pytest.raises(ValueError):
            safe_relative(bad)
    with mirrored(str(tmp_path)) as local:  # a local data dir passes through untouched
        assert local == str(tmp_path)
    with pytest.raises(ValueError):
        RemoteDataDir(str(tmp_path))


# ---------------------------------------------------------------- the S3 endpoint


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """moto's S3 server on a free loopback port with one bucket; yields its endpoint URL."""
    import boto3

    tmp = tmp_path_factory.mktemp("moto")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, **AWS}
    with background([str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)], env,
                    tmp / "moto.log"):
        wait_http(url, timeout=60)
        boto3.client("s3", endpoint_url=url, **_boto_kwargs()).create_bucket(Bucket=BUCKET)
        yield url


def _boto_kwargs() -> dict[str, str]:
    return {"aws_access_key_id": AWS["AWS_ACCESS_KEY_ID"],
            "aws_secret_access_key": AWS["AWS_SECRET_ACCESS_KEY"],
            "region_name": AWS["AWS_DEFAULT_REGION"]}


@pytest.fixture
def s3_env(s3, monkeypatch) -> dict[str, str]:
    """AWS settings pointing at the moto server: for this test process and its children."""
    env = {**AWS, "AWS_ENDPOINT_URL": s3}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return env


def objects(endpoint: str, prefix: str) -> dict[str, bytes]:
    """Key -> bytes of every visible object under ``prefix`` (read with boto3, not fsspec)."""
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint, **_boto_kwargs())
    out = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        for item in page.get("Contents", []):
            out[item["Key"]] = client.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read()
    return out


def open_uploads(endpoint: str, prefix: str) -> list[str]:
    """Keys with an unfinished multipart upload under ``prefix``."""
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint, **_boto_kwargs())
    found = client.list_multipart_uploads(Bucket=BUCKET, Prefix=prefix)
    return [u["Key"] for u in found.get("Uploads", [])]


def put_raw(endpoint: str, key: str, body: bytes) -> None:
    """Put one object under exactly ``key`` with boto3 (no fsspec normalisation of the name)."""
    import boto3

    boto3.client("s3", endpoint_url=endpoint, **_boto_kwargs()).put_object(
        Bucket=BUCKET, Key=key, Body=body)


def tree(root) -> dict[str, bytes]:
    """Relative path -> bytes of every file under ``root`` (symlinks not followed)."""
    out = {}
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            path = os.path.join(dirpath, name)
            if not os.path.islink(path):
                with open(path, "rb") as fh:
                    out[os.path.relpath(path, root)] = fh.read()
    return out


def test_pull_refuses_remote_keys_that_leave_the_cache(s3, s3_env, tmp_path, caplog):
    """Crafted keys (``//``, ``..``, backslashes, NUL, control characters, a key through a
    symlink that points outside) are refused, each named in a warning; nothing is written
    outside the cache, the good objects still arrive, and push leaves the crafted keys alone."""
    prefix = "hostile/data"
    outside = tmp_path / "outside"
    outside.mkdir()
    cache = tmp_path / "cache"
    (cache / "windows").mkdir(parents=True)
    os.symlink(outside, cache / "runs")  # a folder of the cache that resolves elsewhere
    good = {f"{prefix}/windows/ok.h5": b"good windows", f"{prefix}/candles/a/part.parquet": b"p"}
    crafted = [
        f"{prefix}/{tmp_path}/outside/absolute.txt",  # "data//tmp/...": an absolute path
        f"{prefix}/a//b.txt",
        f"{prefix}/x/../../../../escape.txt",
        f"{prefix}/..",
        f"{prefix}/windows/..\\..\\..\\backslash.txt",
        f"{prefix}/windows/nul\x00byte.txt",
        f"{prefix}/windows/bell\x07.txt",
        f"{prefix}/runs/through-symlink.txt",
    ]
    for key, body in good.items():
        put_raw(s3, key, body)
    for key in crafted:
        put_raw(s3, key, b"evil")
    outside_before = tree(tmp_path / "outside")
    remote = RemoteDataDir(f"s3://{BUCKET}/{prefix}", cache=cache)
    with caplog.at_level("WARNING", logger="storage.remote"):
        report = remote.pull()
    assert sorted(report.transferred) == ["candles/a/part.parquet", "windows/ok.h5"]
    assert tree(cache) == {"windows/ok.h5": b"good windows", "candles/a/part.parquet": b"p",
                           ".remote-manifest.json": (cache / ".remote-manifest.json").read_bytes()}
    assert tree(outside) == outside_before == {}  # nothing through the symlink or elsewhere
    assert not (tmp_path / "outside" / "absolute.txt").exists()
    assert sorted(report.refused) == sorted(k[len(prefix) + 1:] for k in crafted)
    warned = "\n".join(r.getMessage() for r in caplog.records)
    for rel in report.refused:
        assert repr(rel) in warned
    # A push afterwards neither deletes nor rewrites the refused keys, nor sends the symlink's.
    remote.push()
    keys = objects(s3, prefix + "/")
    assert all(keys[key] == b"evil" for key in crafted)
    assert keys[f"{prefix}/windows/ok.h5"] == b"good windows"


def child(script: str, env: dict[str, str], timeout: float = 300) -> str:
    """Run ``script`` in a fresh interpreter from the repository root; return its stdout."""
    proc = subprocess.run([sys.executable, "-c", script], env=env, cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=timeout, check=False)
    assert proc.returncode == 0, f"child failed:\n{proc.stdout}\n{proc.stderr[-4000:]}"
    return proc.stdout


# ---------------------------------------------------------------- slow: real flows on S3

WRITER = """
import io
import json
from pathlib import Path
from storage.remote import mirrored
from flows.ingest import ingest
from flows.prepare import prepare
url, cache, base_url = {args}
with mirrored(url, cache=Path(cache)) as data_dir:
    ingest(symbols=["BTC_USDT"], start="2017-07-20T00:00:00Z", base_url=base_url,
           data_dir=data_dir, max_requests_per_second=0)
    path = prepare(symbol="BTC_USDT", interval="MINUTE_5", past=32, future=4, data_dir=data_dir)
print(json.dumps({{"windows": Path(path).name}}))
"""

READER = """
import io
import json
from pathlib import Path
import pandas as pd
from storage.layout import DataLayout
from storage.candles import CandleStore
from storage.remote import mirrored
from tasks.windows import open_dataset
url, cache = {args}
# The candle store pulls its series as it opens it; this reader globs windows/ itself: named.
with mirrored(url, cache=Path(cache), prefixes=["windows"]) as data_dir:
    layout = DataLayout.at(data_dir)
    frame = CandleStore(layout.candles).load("BTC_USDT", "MINUTE_5")
    files = sorted(p.name for p in layout.windows.glob("*.h5"))
    with open_dataset(str(layout.windows / files[0])) as ds:
        x, _ = ds.split_arrays("train")
        windows = {{"n": int(ds.attrs["n_windows"]), "train_sum": float(x.sum())}}
print(json.dumps({{"hash": int(pd.util.hash_pandas_object(frame, index=False).sum()),
                  "rows": len(frame), "first": str(frame["open_time"].min()),
                  "files": files, "windows": windows}}))
"""


@pytest.mark.slow
def test_ingest_and_prepare_write_to_s3_and_a_fresh_process_reads_them(
        s3, s3_env, prefect_api, tmp_path):
    """Flows write through the mirror; objects appear in the bucket (no temp or lock files);
    another process with an empty cache reads identical candles and windows."""
    from prefect.settings import PREFECT_API_URL

    source = shared_file(POLONIEX_5M)
    url = f"s3://{BUCKET}/writer-test/data"
    env = base_env(tmp_path / "home", PREFECT_API_URL=PREFECT_API_URL.value(), **s3_env,
                   CRYPTOFLOW_MAX_REQUESTS_PER_SECOND="0")
    (tmp_path / "home").mkdir()
    with replay_process(source, env, tmp_path / "replay.log", "--now", str(NOW_MS)) as replay:
        out = child(WRITER.format(args=repr((url, str(tmp_path / "cache-a"), replay))), env)
    written = json.loads(out.strip().splitlines()[-1])

    keys = objects(s3, "writer-test/data/")
    parquet = [k for k in keys if k.endswith(".parquet")]
    assert parquet and all("/candles/exchange=poloniex/symbol=BTC_USDT/" in k for k in parquet)
    assert f"writer-test/data/windows/{written['windows']}" in keys
    assert not [k for k in keys if any(p.startswith(".") for p in k.split("/"))], keys

    # What the writer's own store holds, read locally from its cache.
    mine = json.loads(child(READER.format(args=repr((url, str(tmp_path / "cache-a")))), env)
                      .strip().splitlines()[-1])
    # Another host: an empty cache, everything comes from the bucket.
    other = json.loads(child(READER.format(args=repr((url, str(tmp_path / "cache-b")))), env)
                       .strip().splitlines()[-1])
    assert other == mine
    assert other["rows"] >= 3 * 24 * 12 - 1 and other["first"].startswith("2017-07-20")
    assert other["files"] == [written["windows"]] and other["windows"]["n"] > 0


UPLOADER = """
import os, sys, time
from pathlib import Path
from storage.remote import RemoteDataDir
url, cache, mode = {args}
remote = RemoteDataDir(url, cache=Path(cache))
def on_chunk(rel, sent):
    print("SENT", rel, sent, flush=True)
    if rel.endswith("big.bin"):
        if mode == "raise":
            raise RuntimeError("network gone")
        time.sleep(120)  # the parent kills us here, a part already uploaded
remote.push(on_chunk=on_chunk)
"""


@pytest.mark.slow
def test_interrupted_upload_leaves_no_partial_object(s3, s3_env, tmp_path):
    """SIGKILL after the first 8 MiB part of a 20 MiB upload: the key keeps its old bytes (or
    stays absent), the unfinished multipart upload is invisible; an exception aborts it."""
    url = f"s3://{BUCKET}/interrupt/data"
    cache = tmp_path / "cache"
    old = b"old version\n"
    (cache / "windows").mkdir(parents=True)
    (cache / "windows" / "big.bin").write_bytes(old)
    (cache / "windows" / "small.json").write_text("{}")
    (cache / "windows" / ".big.bin.123.tmp").write_bytes(b"half")  # a store's temp: never sent
    RemoteDataDir(url, cache=cache).push()
    assert objects(s3, "interrupt/")["interrupt/data/windows/big.bin"] == old

    # New 20 MiB content, plus a brand-new key, both interrupted.
    (cache / "windows" / "big.bin").write_bytes(os.urandom(20 * 1024 * 1024))
    (cache / "runs").mkdir()
    (cache / "runs" / "big.bin").write_bytes(os.urandom(20 * 1024 * 1024))
    env = {**os.environ, **s3_env, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", UPLOADER.format(args=repr((url, str(cache), "sleep")))],
        env=env, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 120
        assert proc.stdout is not None
        for line in proc.stdout:  # runs/big.bin sorts first: its first part is then uploaded
            if line.startswith("SENT") and line.split()[1].endswith("big.bin"):
                break
            assert time.monotonic() < deadline
        else:
            pytest.fail(f"uploader ended early: {proc.stderr.read() if proc.stderr else ''}")
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    visible = objects(s3, "interrupt/")
    assert "interrupt/data/runs/big.bin" not in visible
    assert visible["interrupt/data/windows/big.bin"] == old
    assert not any(".tmp" in k for k in visible)
    # The kill came mid-upload: a multipart upload was started and left unfinished, unseen.
    assert "interrupt/data/runs/big.bin" in open_uploads(s3, "interrupt/")

    # An exception instead of a kill: the multipart upload is aborted, nothing visible.
    out = subprocess.run(
        [sys.executable, "-c", UPLOADER.format(args=repr((url, str(cache), "raise")))],
        env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False,
    )
    assert out.returncode != 0 and "network gone" in out.stderr
    visible = objects(s3, "interrupt/")
    assert "interrupt/data/runs/big.bin" not in visible
    assert visible["interrupt/data/windows/big.bin"] == old
    assert open_uploads(s3, "interrupt/") == ["interrupt/data/runs/big.bin"]  # the killed one

    # Uninterrupted, the new bytes replace the old in one piece; a deleted file is deleted.
    (cache / "windows" / "small.json").unlink()
    report = RemoteDataDir(url, cache=cache).push()
    visible = objects(s3, "interrupt/")
    assert visible["interrupt/data/runs/big.bin"] == (cache / "runs" / "big.bin").read_bytes()
    assert visible["interrupt/data/windows/big.bin"] == (cache / "windows/big.bin").read_bytes()
    assert "interrupt/data/windows/small.json" not in visible
    assert report.deleted == ["windows/small.json"]


@pytest.mark.slow
def test_dask_workers_train_from_and_into_s3(s3, s3_env, prefect_api, tmp_path, monkeypatch):
    """A Dask worker with its own mirror pulls the window file from the bucket, trains, pushes
    the run; the history in the bucket equals a local training's (same seed)."""
    from prefect import flow

    from flows.runners import make_task_runner, train_on_runner
    from tasks.training.slots import Slot, available_cores
    from tasks.training.worker import run_worker

    sys.path.insert(0, str(REPO_ROOT / "tests"))
    from tests.support.windows import write_real_windows

    url = f"s3://{BUCKET}/dask-test/data"
    host = tmp_path / "flow-host"
    write_real_windows(host / "windows" / "w.h5", past=64, future=4, stride=4, rows=3000)
    RemoteDataDir(url, cache=host).push()
    options = {"epochs": 1, "batch_size": 64, "seed": 5, "patience": None,
               "checkpoints": "every"}
    ref = run_worker({"kind": "train", "dataset_path": str(host / "windows" / "w.h5"),
                      "model": "cnn2_relu", "run_dir": str(tmp_path / "ref"), **options},
                     Slot("cpu-0", "", available_cores(), False))
    monkeypatch.setenv("CRYPTOFLOW_CACHE_DIR", str(tmp_path / "worker-host"))  # the workers' disk

    @flow(name="zoo-on-s3")
    def zoo_on_s3() -> dict:
        runner = make_task_runner("dask", n_workers=1)
        return train_on_runner(runner, ["cnn2_relu"], "windows/w.h5",
                               {"cnn2_relu": "runs/r1/cnn2_relu"}, options, data_url=url)

    result = zoo_on_s3()["cnn2_relu"]
    assert not isinstance(result, BaseException), result
    assert result["history"] == f"{url}/runs/r1/cnn2_relu/history.csv"
    assert result["best_checkpoint"].startswith(f"{url}/runs/r1/cnn2_relu/checkpoints/epoch-001-")
    keys = objects(s3, "dask-test/data/runs/r1/cnn2_relu/")
    history = keys["dask-test/data/runs/r1/cnn2_relu/history.csv"].decode()
    got = pd.read_csv(io.StringIO(history))
    want = pd.read_csv(ref["history"])
    assert got[["epoch", "loss", "val_loss"]].equals(want[["epoch", "loss", "val_loss"]])
    assert any(k.endswith(".keras") for k in keys)
    assert (tmp_path / "worker-host").is_dir()  # the worker trained in its own mirror


@pytest.mark.slow
def test_cli_pipeline_on_an_s3_data_dir(s3_env, tmp_path):
    """`cryptoflow run --data-dir s3://…`: every store (candles, windows, runs, reports) lands in
    the bucket, each object whole; a second run from an empty cache reuses it all."""
    from tests.support.servers import replay_process

    source = shared_file("poloniex-USDT_BTC-5m-2017-07-14--2017-08-09.csv")
    url = f"s3://{BUCKET}/cli"
    env = base_env(tmp_path / "home", **s3_env, CRYPTOFLOW_CACHE_DIR=str(tmp_path / "cache1"))
    (tmp_path / "home").mkdir()
    now = str(int(pd.Timestamp("2017-07-19T00:00:00Z").value // 1_000_000))
    with replay_process(source, env, tmp_path / "replay.log", "--now", now) as replay:
        args = [str(VENV_BIN / "cryptoflow"), "run", "--data-dir", url, "--base-url", replay,
                "--start", "2017-07-15", "--past", "32", "--future", "4",
                "--models", "cnn2_relu", "--epochs", "1", "--batch-size", "128"]
        first = subprocess.run(args, env=env, capture_output=True, text=True, timeout=900)
        assert first.returncode == 0, first.stderr[-3000:]
        keys = objects(s3_env["AWS_ENDPOINT_URL"], "cli/")
        for part in ("candles/", "windows/", "runs/", "reports/"):
            assert any(k.startswith(f"cli/{part}") for k in keys), (part, sorted(keys))
        assert any(k.endswith("report.html") for k in keys)
        assert not open_uploads(s3_env["AWS_ENDPOINT_URL"], "cli/")
        env2 = {**env, "CRYPTOFLOW_CACHE_DIR": str(tmp_path / "cache2")}  # another machine
        second = subprocess.run(args, env=env2, capture_output=True, text=True, timeout=900)
        assert second.returncode == 0, second.stderr[-3000:]
        # Same run id: same dataset id, so the same candle fingerprint (it saw the stored data).
        run_line = [line for line in first.stdout.splitlines() if line.startswith("run:")]
        assert run_line and run_line[0] in second.stdout.splitlines()
        after = objects(s3_env["AWS_ENDPOINT_URL"], "cli/")

        def trained(objs: dict[str, bytes]) -> dict[str, bytes]:
            return {k: v for k, v in objs.items() if k.startswith("cli/runs/")
                    and (k.endswith("history.csv") or "/checkpoints/" in k)}

        assert trained(keys) and trained(after) == trained(keys)  # nothing retrained


@pytest.mark.slow
def test_forecasts_on_s3_keep_earlier_issues_across_hosts(s3, s3_env, prefect_api, tmp_path,
                                                          monkeypatch):
    """The forecast flow on an S3 data dir from two fresh hosts: the second host's forecast and
    score files hold the first host's issue too (the stores rewrite whole month/day files, so
    they must be pulled before they are rewritten, not replaced by files missing rows)."""
    import boto3

    from flows.forecast import forecast
    from storage.candles import CandleStore
    from storage.forecasts import ForecastStore
    from storage.layout import DataLayout
    from tests.flows.test_forecast import FUTURE, INTERVAL, ROWS, SYMBOL, _make_champion

    local = tmp_path / "made"
    made = _make_champion(local)
    client = boto3.client("s3", endpoint_url=s3, **_boto_kwargs())
    prefix = "forecast-hosts/data"

    def upload() -> None:
        for rel, body in tree(local).items():
            client.put_object(Bucket=BUCKET, Key=f"{prefix}/{rel}", Body=body)

    upload()
    url = f"s3://{BUCKET}/{prefix}"
    monkeypatch.setenv("CRYPTOFLOW_CACHE_DIR", str(tmp_path / "host-a"))
    first = forecast(symbols=[SYMBOL], intervals=[INTERVAL], data_dir=url)
    assert first["added"] == 2 * FUTURE
    # K more candles arrive (the first issue matures), written by the ingest host
    CandleStore(DataLayout.at(local).candles).append(
        SYMBOL, INTERVAL, made["candles"].iloc[ROWS - FUTURE:])
    for rel, body in tree(local).items():
        if rel.startswith("candles/"):
            client.put_object(Bucket=BUCKET, Key=f"{prefix}/{rel}", Body=body)
    monkeypatch.setenv("CRYPTOFLOW_CACHE_DIR", str(tmp_path / "host-b"))
    second = forecast(symbols=[SYMBOL], intervals=[INTERVAL], data_dir=url)
    assert second["added"] == 2 * FUTURE and second["live"]["scored_issues"] == 1

    # a third host reads both issues, and the first issue's scores, from the bucket alone
    reader = tmp_path / "reader"
    for key, body in objects(s3, f"{prefix}/").items():
        rel = key[len(prefix) + 1:]
        if rel.startswith(("forecasts/", "scores/")):
            (reader / rel).parent.mkdir(parents=True, exist_ok=True)
            (reader / rel).write_bytes(body)
    rows = ForecastStore(DataLayout.at(reader).forecasts).read(SYMBOL, INTERVAL)
    assert rows["issued_at"].nunique() == 2 and len(rows) == 4 * FUTURE
    from storage.scores import ScoreStore

    scores = ScoreStore(DataLayout.at(reader).scores).read(SYMBOL, INTERVAL)
    assert scores["issued_at"].nunique() == 1 and len(scores) == 2 * FUTURE
