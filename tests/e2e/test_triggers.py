"""The deployments' event triggers on a real Prefect server (its triggers service), counted by
the flow runs they create:

- the scheduled ingest deployment appending candles starts one forecast run per market that
  grew, and (when switched on) one pipeline run per market, at most one per hour;
- the pipeline's own ingest (a subflow: a run of no deployment) appending candles starts
  nothing, so the pipeline can never trigger itself;
- a degraded-skill event of one market starts exactly one pipeline run, for that market, and a
  repeat within the day starts none.

The triggered runs are not executed (no worker serves these deployments): the test counts them
and reads their parameters.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import httpx
import pandas as pd
import pytest

from tests.support.paths import REPO_ROOT, shared_file
from tests.support.realdata import POLONIEX_5M
from tests.support.servers import base_env, prefect_server, replay_process

pytestmark = pytest.mark.slow

SYMBOLS = ["BTC_USDT", "ETH_USDT"]
NOW = pd.Timestamp("2017-07-21T00:00:00Z")
#: How long a trigger that must not fire is given to fire anyway (the triggers service reacts
#: within a second or two on this machine).
QUIET_SECONDS = 12


def _ms(t: pd.Timestamp) -> int:
    return int(t.value // 1_000_000)


def _step(env: dict[str, str], *args: str) -> dict:
    proc = subprocess.run(
        [sys.executable, "-m", "tests.support.trigger_driver", *args], env=env, cwd=REPO_ROOT,
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    return json.loads(lines[-1]) if lines else None


class Runs:
    """Flow runs of the deployments, read from the REST API (as the UI lists them)."""

    def __init__(self, api: str, ids: dict[str, str]) -> None:
        self.http = httpx.Client(base_url=api, timeout=30)
        self.ids = ids

    def of(self, name: str) -> list[dict]:
        body = {"flow_runs": {"deployment_id": {"any_": [self.ids[name]]}}}
        return self.http.post("/flow_runs/filter", json=body).raise_for_status().json()

    def wait_for(self, name: str, count: int, timeout: float = 90) -> list[dict]:
        """The runs of ``name`` once there are ``count`` (fail when more, or too few in time)."""
        deadline = time.monotonic() + timeout
        runs = self.of(name)
        while len(runs) < count and time.monotonic() < deadline:
            time.sleep(1)
            runs = self.of(name)
        assert len(runs) == count, [r["parameters"] for r in runs]
        return runs


def test_triggers_follow_the_ingest_deployment_and_degraded_skill_without_a_loop(tmp_path):
    source = shared_file(POLONIEX_5M)
    home = tmp_path / "home"
    home.mkdir()
    data_dir = str(tmp_path / "data")
    with prefect_server(home, tmp_path / "server.log") as api:
        env = base_env(home, PREFECT_API_URL=api, PYTHONPATH=str(REPO_ROOT),
                       CRYPTOFLOW_MAX_REQUESTS_PER_SECOND="0")
        replay_args = ["--now", str(_ms(NOW)), "--symbol", ",".join(SYMBOLS)]
        with replay_process(source, env, tmp_path / "replay.log", *replay_args) as url:
            runs = Runs(api, _step(env, "apply"))
            clock = httpx.Client(base_url=url, timeout=10)

            # the ingest deployment appends both markets: one forecast run each, one pipeline
            # run each (the after-ingest trigger is switched on for this test)
            _step(env, "ingest-deployment", url, data_dir, *SYMBOLS)
            forecasts = runs.wait_for("forecast", 2)
            assert sorted(r["parameters"]["symbols"][0] for r in forecasts) == SYMBOLS
            assert all(r["parameters"]["intervals"] == ["MINUTE_5"] for r in forecasts)
            pipelines = runs.wait_for("pipeline", 2)
            assert sorted(r["parameters"]["symbols"][0] for r in pipelines) == SYMBOLS

            # the pipeline's own ingest (no deployment) appends: nothing is triggered
            clock.post("/_replay/clock", params={"now": _ms(NOW + pd.Timedelta("30min"))})
            appended = _step(env, "ingest-bare", url, data_dir, SYMBOLS[0])
            assert appended[0]["added"] > 0
            time.sleep(QUIET_SECONDS)
            runs.wait_for("forecast", 2, timeout=0)
            runs.wait_for("pipeline", 2, timeout=0)

            # the deployment again, within the hour: forecasts again, no pipeline (cooldown)
            clock.post("/_replay/clock", params={"now": _ms(NOW + pd.Timedelta("60min"))})
            _step(env, "ingest-deployment", url, data_dir, SYMBOLS[0])
            runs.wait_for("forecast", 3)
            time.sleep(QUIET_SECONDS)
            runs.wait_for("pipeline", 2, timeout=0)

            # degraded live skill of ETH: exactly one pipeline run, for ETH only
            before = {r["id"] for r in runs.of("pipeline")}
            _step(env, "degraded", "ETH_USDT", "MINUTE_5")
            new = [r for r in runs.wait_for("pipeline", 3) if r["id"] not in before]
            assert [r["parameters"] for r in new] == [
                {"symbols": ["ETH_USDT"], "intervals": ["MINUTE_5"]}
            ]
            _step(env, "degraded", "ETH_USDT", "MINUTE_5")  # still degraded: within the day
            time.sleep(QUIET_SECONDS)
            runs.wait_for("pipeline", 3, timeout=0)
