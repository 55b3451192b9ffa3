"""One writer per series across hosts: the Prefect global concurrency limit of each series.

Two "hosts" are two processes with their own ``PREFECT_HOME`` and ``CRYPTOFLOW_HOST_NAME``
talking to one real ``prefect server``: while one holds a series, the other's ingest waits at
most ``ingest_writer_wait`` and then fails naming the holder; the two never write at once; a
holder killed with SIGKILL does not keep its series on this host.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from storage.errors import BadInputError
from storage.settings import settings
from tasks.ingest.writer import describe_holder, writer_limit_name
from tests.support.paths import REPO_ROOT, shared_file
from tests.support.servers import base_env, prefect_server, replay_process

POLONIEX_5M = "poloniex-USDT_BTC-5m-2017-07-14--2017-08-09.csv"
NOW_MS = int(pd.Timestamp("2017-07-16T00:00:00Z").value // 1_000_000)

HOLD = """
import json, sys, time
from tasks.ingest.writer import series_writer
from pathlib import Path
seconds, release = float(sys.argv[1]), Path(sys.argv[2]) if len(sys.argv) > 2 else None
try:
    with series_writer("poloniex", "BTC_USDT", "MINUTE_5"):
        print(json.dumps({"in": time.time()}), flush=True)
        deadline = time.time() + seconds
        while time.time() < deadline and not (release and release.exists()):
            time.sleep(0.1)
        print(json.dumps({"out": time.time()}), flush=True)
except Exception as exc:
    print(json.dumps({"error": str(exc), "type": type(exc).__name__}), flush=True)
"""

INGEST = """
import json, sys, time
from flows.ingest import ingest
from tasks.ingest.writer import series_writer
base_url, data_dir = sys.argv[1], sys.argv[2]
t0 = time.time()
print(json.dumps({"starting": t0}), flush=True)
try:
    out = ingest(symbols=["BTC_USDT"], start="2017-07-14T00:00:00Z", base_url=base_url,
                 data_dir=data_dir, max_requests_per_second=0, progress=False)
    print(json.dumps({"added": out[0]["added"], "t0": t0, "t1": time.time()}), flush=True)
except Exception as exc:
    print(json.dumps({"error": str(exc), "t0": t0, "t1": time.time()}), flush=True)
"""


def test_limit_names_and_holder_text():
    assert writer_limit_name("poloniex", "BTC_USDT", "MINUTE_5") == (
        "cryptoflow-ingest-poloniex-btc_usdt-minute_5")
    with pytest.raises((BadInputError, ValueError)):
        writer_limit_name("poloniex", "BTC/USDT", "MINUTE_5")
    text = describe_holder({"host": "host-a", "pid": 12, "flow_run_name": "brave-fox",
                            "flow_run_id": "1c2d", "since": "2026-01-01T00:00:00+00:00"})
    assert text == ("host 'host-a' (pid 12, flow run 'brave-fox' 1c2d) since "
                    "2026-01-01T00:00:00+00:00")


@pytest.mark.parametrize(("name", "value", "problem"), [
    ("CRYPTOFLOW_HOST_NAME", "my host", "HOST_NAME"),
    ("CRYPTOFLOW_INGEST_WRITER_WAIT", "-1", "INGEST_WRITER_WAIT"),
    ("CRYPTOFLOW_INGEST_WRITER_LEASE", "5", "INGEST_WRITER_LEASE"),
])
def test_bad_writer_settings_are_refused(monkeypatch, name, value, problem):
    monkeypatch.setenv(name, value)
    with pytest.raises(BadInputError, match=f"CRYPTOFLOW_{problem}"):
        settings()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("prefect-server")
    (tmp / "home").mkdir()
    with prefect_server(tmp / "home", tmp / "server.log") as api:
        yield api


def host_env(tmp_path, api: str, host: str, **extra: str) -> dict[str, str]:
    home = tmp_path / f"home-{host}"
    home.mkdir(exist_ok=True)
    return base_env(home, PREFECT_API_URL=api, CRYPTOFLOW_HOST_NAME=host,
                    PYTHONPATH=str(REPO_ROOT), **extra)


def start(script: str, env: dict[str, str], *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", script, *args], env=env, cwd=REPO_ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def lines(proc: subprocess.Popen, timeout: float = 180) -> list[dict]:
    out, err = proc.communicate(timeout=timeout)
    found = [json.loads(x) for x in out.splitlines() if x.startswith("{")]
    found = [x for x in found if "starting" not in x]
    assert found, f"no output:\n{out}\n{err[-3000:]}"
    return found


def wait_entered(proc: subprocess.Popen, timeout: float = 120) -> dict:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    for line in proc.stdout:
        if line.startswith("{"):
            got = json.loads(line)
            assert "in" in got, got
            return got
        assert time.monotonic() < deadline
    pytest.fail(f"holder ended early: {proc.stderr.read() if proc.stderr else ''}")


@pytest.mark.slow
def test_two_hosts_never_write_one_series_at_once(server, tmp_path):
    """Host A holds the series; host B's ingest fails after its bounded wait naming host A and
    writes nothing; with a longer wait B's ingest starts writing only after A let go."""
    data_b, release = tmp_path / "data-b", tmp_path / "release-a"
    env_b = host_env(tmp_path, server, "host-b", CRYPTOFLOW_INGEST_WRITER_WAIT="1",
                     CRYPTOFLOW_MAX_REQUESTS_PER_SECOND="0")
    with replay_process(shared_file(POLONIEX_5M), env_b, tmp_path / "replay.log",
                        "--now", str(NOW_MS)) as replay:
        holder = start(HOLD, host_env(tmp_path, server, "host-a"), "300", str(release))
        entered = wait_entered(holder)
        loser = lines(start(INGEST, env_b, replay, str(data_b)))[-1]
        assert "error" in loser, loser
        assert "another ingest of BTC_USDT MINUTE_5 is writing it" in loser["error"]
        assert f"host 'host-a' (pid {holder.pid}" in loser["error"], loser["error"]
        assert "cryptoflow-ingest-poloniex-btc_usdt-minute_5" in loser["error"]
        assert not list(data_b.rglob("*.parquet"))  # it wrote nothing

        patient = start(INGEST, {**env_b, "CRYPTOFLOW_INGEST_WRITER_WAIT": "120"}, replay,
                        str(data_b))
        assert patient.stdout is not None and "starting" in patient.stdout.readline()
        time.sleep(4)  # its flow is running and waiting for the slot now
        release.touch()
        released = lines(holder)[-1]
        assert set(released) == {"out"} and released["out"] > entered["in"]
        winner = lines(patient)[-1]
        assert "added" in winner and winner["added"] > 0, winner
    # B wrote only after A let go: its first partition file is newer than A's release.
    first_write = min(p.stat().st_mtime for p in data_b.rglob("*.parquet"))
    assert first_write >= released["out"]
    assert winner["t0"] < released["out"]  # and it had started before A let go


@pytest.mark.slow
def test_a_killed_holder_does_not_keep_its_series(server, tmp_path):
    """``kill -9`` of the holder on this host: the next writer here takes the series at once
    (the dead process's lease is released, not waited out for five minutes)."""
    env = host_env(tmp_path, server, "host-a", CRYPTOFLOW_INGEST_WRITER_WAIT="20")
    holder = start(HOLD, env, "600")
    wait_entered(holder)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(timeout=30)
    t0 = time.monotonic()
    got = lines(start(HOLD, env, "0"))
    assert "in" in got[0] and "out" in got[-1], got
    assert time.monotonic() - t0 < 20
    # Another host does not guess about a process it cannot see: it waits, then names it.
    holder = start(HOLD, env, "600")
    wait_entered(holder)
    try:
        os.kill(holder.pid, signal.SIGSTOP)  # alive but silent
        other = lines(start(HOLD, host_env(tmp_path, server, "host-b",
                                           CRYPTOFLOW_INGEST_WRITER_WAIT="1"), "0"))[-1]
        assert other["type"] == "SeriesBusyError" and "host 'host-a'" in other["error"]
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=30)
