"""Prefect's server on a real PostgreSQL: a pipeline run, and two workers sharing one server.

Everything is started here, on 127.0.0.1: a throw-away PostgreSQL cluster (``tests/pg.py``,
Debian's binaries; skipped when absent), ``prefect server start`` with
``PREFECT_SERVER_DATABASE_CONNECTION_URL=postgresql+asyncpg://...``, the replay server over the
recorded Poloniex candles, and two process workers polling the same work pool.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import httpx
import pandas as pd
import pytest

from tests.support.paths import REPO_ROOT, shared_file
from tests.support.pg import PgCluster, postgres_cluster
from tests.support.servers import (
    VENV_BIN,
    background,
    base_env,
    free_port,
    replay_process,
    stop,
    wait_http,
)

pytestmark = pytest.mark.slow

POLONIEX_5M = "poloniex-USDT_BTC-5m-2017-07-14--2017-08-09.csv"
START = "2017-07-20T00:00:00Z"
# Replay clock three days after START: 864 five-minute candles to ingest.
NOW_MS = int(pd.Timestamp("2017-07-23T00:00:00Z").value // 1_000_000)
EXPECTED_CANDLES = 3 * 24 * 12
TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
POOL = "cryptoflow-pg"
N_RUNS = 4


def run_cli(args: list, env: dict, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run a command from the repository root; fail the test with its output on error."""
    proc = subprocess.run([str(a) for a in args], env=env, cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=timeout, check=False)
    assert proc.returncode == 0, f"{args} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


def wait_runs(http: httpx.Client, ids: list[str], timeout: float) -> dict[str, dict]:
    """Poll the API until every flow run in ``ids`` is in a terminal state."""
    deadline = time.monotonic() + timeout
    runs: dict[str, dict] = {}
    while time.monotonic() < deadline:
        runs = {i: http.get(f"/flow_runs/{i}").raise_for_status().json() for i in ids}
        if all(r["state_type"] in TERMINAL for r in runs.values()):
            return runs
        time.sleep(1)
    states = {i: r["state_type"] for i, r in runs.items()}
    raise TimeoutError(f"flow runs not finished after {timeout}s: {states}")


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """PostgreSQL + a Prefect server on it + the replay server."""
    source = shared_file(POLONIEX_5M)
    tmp = tmp_path_factory.mktemp("pg-backend")
    home = tmp / "prefect-home"
    home.mkdir()
    with postgres_cluster() as pg:
        port = free_port()
        api_url = f"http://127.0.0.1:{port}/api"
        env = base_env(
            home,
            PREFECT_SERVER_DATABASE_CONNECTION_URL=pg.asyncpg_url,
            PREFECT_UI_API_URL=api_url,
        )
        with open(tmp / "server.log", "wb") as log:
            server = subprocess.Popen(
                [str(VENV_BIN / "prefect"), "server", "start", "--host", "127.0.0.1",
                 "--port", str(port)],
                env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        try:
            wait_http(f"{api_url}/health", timeout=180, proc=server)
            client_env = base_env(
                home,
                PREFECT_API_URL=api_url,
                CRYPTOFLOW_MAX_REQUESTS_PER_SECOND="0",
                PREFECT_WORKER_QUERY_SECONDS="1",
                PREFECT_WORKER_PREFETCH_SECONDS="5",
            )
            with replay_process(source, client_env, tmp / "replay.log",
                                "--now", str(NOW_MS)) as replay:
                yield {"pg": pg, "api": api_url, "env": client_env, "replay": replay,
                       "tmp": tmp, "http": httpx.Client(base_url=api_url, timeout=30)}
        finally:
            stop(server)


def test_server_schema_is_in_postgres(stack):
    """The server migrated its schema into PostgreSQL (not a SQLite file in PREFECT_HOME)."""
    pg: PgCluster = stack["pg"]
    tables = set(pg.psql("SELECT tablename FROM pg_tables WHERE schemaname='public'").split())
    assert {"flow", "flow_run", "task_run", "deployment", "work_pool"} <= tables
    assert "pg_trgm" in pg.psql("SELECT extname FROM pg_extension").split()
    assert not list(Path(stack["tmp"] / "prefect-home").glob("*.db"))


def test_pipeline_run_against_postgres_server(stack):
    """`cryptoflow run` (ingest, prepare, train one model one epoch, report) completes against
    the PostgreSQL-backed server; its flow run and subflow runs are rows in PostgreSQL."""
    pg: PgCluster = stack["pg"]
    data = stack["tmp"] / "pipeline-data"
    run_cli([VENV_BIN / "cryptoflow", "run", "--base-url", stack["replay"],
             "--data-dir", data, "--start", START, "--past", "32", "--future", "4",
             "--models", "cnn2_relu", "--epochs", "1", "--batch-size", "128"],
            stack["env"], timeout=400)
    assert len(list((data / "reports").glob("*/leaderboard.json"))) == 1

    found = stack["http"].post(
        "/flow_runs/filter", json={"flows": {"name": {"any_": ["pipeline"]}}}
    ).raise_for_status().json()
    assert len(found) == 1 and found[0]["state_type"] == "COMPLETED", found
    run_id = found[0]["id"]
    row = pg.psql(f"SELECT state_type, run_count FROM flow_run WHERE id = '{run_id}'")
    assert row == "COMPLETED|1", row
    # Each stage is a subflow: ingest, prepare, train and report runs are rows too.
    names = set(pg.psql(
        "SELECT f.name FROM flow_run fr JOIN flow f ON f.id = fr.flow_id "
        "WHERE fr.state_type = 'COMPLETED'"
    ).split())
    assert {"pipeline", "ingest", "prepare"} <= names, names
    assert int(pg.psql("SELECT count(*) FROM task_run WHERE state_type = 'COMPLETED'")) > 0


def test_two_workers_execute_each_run_exactly_once(stack):
    """`prefect deploy` of the ingest deployment; two process workers poll one pool; each of
    several flow runs is executed exactly once (one RUNNING state in PostgreSQL) and completes."""
    pg: PgCluster = stack["pg"]
    env, http, tmp = stack["env"], stack["http"], stack["tmp"]
    run_cli([VENV_BIN / "prefect", "work-pool", "create", POOL, "--type", "process"], env)
    run_cli([VENV_BIN / "prefect", "--no-prompt", "deploy", "--name", "ingest",
             "--pool", POOL], env)
    dep = http.get("/deployments/name/ingest/ingest").raise_for_status().json()
    # Several symbols' worth of ingests at once: no schedule here, room for all runs.
    http.patch(f"/deployments/{dep['id']}",
               json={"schedules": [], "concurrency_limit": N_RUNS}).raise_for_status()

    ids, dirs = [], []
    for i in range(N_RUNS):
        d = tmp / f"ingest-{i}"
        dirs.append(d)
        params = {"symbols": ["BTC_USDT"], "start": START, "base_url": stack["replay"],
                  "data_dir": str(d), "max_requests_per_second": 0}
        run = http.post(f"/deployments/{dep['id']}/create_flow_run",
                        json={"parameters": params}).raise_for_status().json()
        ids.append(run["id"])

    workers = [
        background([VENV_BIN / "prefect", "worker", "start", "--pool", POOL, "--name", name,
                    "--limit", "2"], env, tmp / f"{name}.log", cwd=REPO_ROOT)
        for name in ("worker-a", "worker-b")
    ]
    for w in workers:
        w.__enter__()
    try:
        runs = wait_runs(http, ids, timeout=300)
        registered = http.post(f"/work_pools/{POOL}/workers/filter", json={}).json()
    finally:
        for w in reversed(workers):
            w.__exit__(None, None, None)

    assert {r["state_type"] for r in runs.values()} == {"COMPLETED"}, {
        i: r["state"] for i, r in runs.items()}
    assert {w["name"] for w in registered} >= {"worker-a", "worker-b"}

    # In PostgreSQL: every run is a row, ran once, with exactly one RUNNING state.
    id_list = ",".join(f"'{i}'" for i in ids)
    rows = pg.psql(f"SELECT id, state_type, run_count FROM flow_run WHERE id IN ({id_list})")
    assert sorted(rows.splitlines()) == sorted(f"{i}|COMPLETED|1" for i in ids), rows
    running = pg.psql(
        "SELECT flow_run_id, count(*) FROM flow_run_state "
        f"WHERE type = 'RUNNING' AND flow_run_id IN ({id_list}) GROUP BY flow_run_id"
    )
    assert sorted(running.splitlines()) == sorted(f"{i}|1" for i in ids), running
    worker_rows = pg.psql(f"SELECT w.name FROM worker w JOIN work_pool p ON p.id = w.work_pool_id "
                          f"WHERE p.name = '{POOL}'")
    assert set(worker_rows.split()) >= {"worker-a", "worker-b"}

    # And each run did its work once: the same candles in each data dir, none twice.
    counts = []
    for d in dirs:
        parts = sorted((d / "candles").rglob("*.parquet"))
        assert parts, f"no candles written under {d}"
        frame = pd.concat([pd.read_parquet(p) for p in parts])
        assert frame["open_time"].is_unique
        counts.append(len(frame))
    assert counts == [counts[0]] * N_RUNS and counts[0] >= EXPECTED_CANDLES - 1, counts
