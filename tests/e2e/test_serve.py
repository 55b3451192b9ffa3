"""`cryptoflow serve`: the deployments of prefect.yaml, with their schedules, in one process."""

from __future__ import annotations

import signal
import subprocess
import time
from datetime import timedelta

import httpx
import pandas as pd
import pytest

from deployments.definitions import load_flow, load_specs, runner_deployments
from tests.support.paths import shared_file
from tests.support.servers import (
    VENV_BIN,
    as_background_job,
    background,
    base_env,
    descendants,
    prefect_server,
    replay_process,
    stop,
    survivors,
)

EXPECTED = {
    "ingest", "pipeline", "report", "regularization-sweep", "prepare", "train", "forecast",
}


def test_prefect_yaml_lists_the_deployments():
    specs = {s.name: s for s in load_specs()}
    assert set(specs) == EXPECTED
    assert specs["ingest"].intervals == (timedelta(minutes=5),)
    assert specs["pipeline"].crons == (("0 3 * * *", "UTC"),)
    assert specs["pipeline"].concurrency_limit == {"limit": 1, "collision_strategy": "ENQUEUE"}
    assert not specs["report"].intervals and not specs["report"].crons
    # On-demand sweep: a Quick run needs a market to find the newest window file.
    sweep = specs["regularization-sweep"]
    assert sweep.parameters == {"symbol": "BTC_USDT", "interval": "MINUTE_5"}
    assert specs["train"].parameters == {"symbol": "BTC_USDT", "interval": "MINUTE_5"}
    assert specs["train"].concurrency_limit == {"limit": 1, "collision_strategy": "ENQUEUE"}
    # Forecast: after each append of the scheduled ingest deployment, for the market that grew.
    forecast = specs["forecast"]
    assert not forecast.intervals and not forecast.crons and specs["ingest"].active == (True,)
    assert forecast.parameters == {"symbols": ["BTC_USDT"], "intervals": ["MINUTE_5"]}
    (after_ingest,) = forecast.triggers
    # the event names in prefect.yaml are the ones the code emits
    from tasks.forecast.events import EVENT_DEGRADED
    from tasks.ingest.publish import EVENT_APPENDED

    assert after_ingest["enabled"] and after_ingest["expect"] == [EVENT_APPENDED]
    assert {"prefect.resource.role": "deployment", "prefect.resource.name": "ingest"} in (
        after_ingest["match_related"])
    assert after_ingest["parameters"]["symbols"] == ["{{ event.payload.symbol }}"]
    # Pipeline: retrains a degraded market (on), or after the ingest deployment (off); neither
    # can stack runs: one per market per day / per hour.
    degraded, appended = specs["pipeline"].triggers
    assert degraded["enabled"] and degraded["expect"] == [EVENT_DEGRADED]
    assert degraded["within"] == 86400 and degraded["for_each"] == ["prefect.resource.id"]
    assert not appended["enabled"] and appended["within"] == 3600
    assert appended["expect"] == [EVENT_APPENDED]
    assert appended["match_related"] == after_ingest["match_related"]
    for spec in specs.values():
        assert load_flow(spec.entrypoint).name == spec.entrypoint.split(":")[1]


def test_runner_deployments_mirror_prefect_yaml():
    deps = {d.name: d for d in runner_deployments()}
    assert set(deps) == EXPECTED
    ingest = deps["ingest"]
    assert [s.schedule.interval for s in ingest.schedules] == [timedelta(minutes=5)]
    pipeline = deps["pipeline"]
    assert pipeline.concurrency_limit == 1
    assert pipeline.concurrency_options.collision_strategy == "ENQUEUE"
    assert ingest.concurrency_options.collision_strategy == "CANCEL_NEW"
    assert [s.schedule.cron for s in pipeline.schedules] == ["0 3 * * *"]
    # Every parameter of every deployment has a description for the UI's Custom run form.
    for dep in deps.values():
        props = dep._parameter_openapi_schema.properties
        assert props and all(p.get("description") for p in props.values()), dep.name
    assert [t.enabled for t in pipeline.triggers] == [True, False]
    assert not deps["forecast"].schedules and len(deps["forecast"].triggers) == 1
    assert [s.active for s in ingest.schedules] == [True]


@pytest.mark.parametrize("entrypoint", ["../evil.py:x", "flows/ingest.py", "os.py:system"])
def test_load_flow_refuses_entrypoints_outside_flows(entrypoint):
    with pytest.raises(ValueError, match="flows/<module>.py:<flow>"):
        load_flow(entrypoint)


@pytest.mark.slow
def test_serve_registers_deployments_and_runs_them(tmp_path):
    """A real server, `cryptoflow serve` in the background: the deployments appear with
    their schedules, and a run of the ingest deployment is executed by the serving process."""
    source = shared_file("poloniex-USDT_BTC-5m-2017-07-14--2017-08-09.csv")
    home = tmp_path / "home"
    home.mkdir()
    now = int(pd.Timestamp("2017-07-16T00:00:00Z").value // 1_000_000)
    with prefect_server(home, tmp_path / "server.log") as api:
        env = base_env(home, PREFECT_API_URL=api, CRYPTOFLOW_DATA_DIR=str(tmp_path / "data"))
        with replay_process(source, env, tmp_path / "replay.log", "--now", str(now)) as replay:
            env["CRYPTOFLOW_POLONIEX_URL"] = replay
            with background([VENV_BIN / "cryptoflow", "serve"], env, tmp_path / "serve.log"):
                http = httpx.Client(base_url=api, timeout=30)
                deadline = time.monotonic() + 180
                deps = []
                while time.monotonic() < deadline and len(deps) < len(EXPECTED):
                    deps = http.post("/deployments/filter", json={}).json()
                    time.sleep(1)
                by_name = {d["name"]: d for d in deps}
                assert set(by_name) == EXPECTED, (tmp_path / "serve.log").read_text()[-3000:]
                scheds = by_name["ingest"]["schedules"]
                assert [s["schedule"]["interval"] for s in scheds] == [300.0]
                pipeline = by_name["pipeline"]
                assert pipeline["global_concurrency_limit"]["limit"] == 1
                assert pipeline["concurrency_options"]["collision_strategy"] == "ENQUEUE"
                run = http.post(
                    f"/deployments/{by_name['ingest']['id']}/create_flow_run",
                    json={"parameters": {"start": "2017-07-15T00:00:00Z"}},
                ).raise_for_status().json()
                deadline = time.monotonic() + 240
                state = None
                while time.monotonic() < deadline:
                    state = http.get(f"/flow_runs/{run['id']}").json()["state_type"]
                    if state in {"COMPLETED", "FAILED", "CRASHED"}:
                        break
                    time.sleep(1)
                assert state == "COMPLETED", (tmp_path / "serve.log").read_text()[-3000:]
    stored = list((tmp_path / "data" / "candles").rglob("*.parquet"))
    assert stored, "the served ingest run stored nothing"


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=lambda s: s.name)
def test_serve_stops_on_a_signal_leaving_nothing_behind(sig, tmp_path):
    """`cryptoflow serve` on a temporary Prefect server (no PREFECT_API_URL), started as a
    background job (SIGINT ignored): the signal ends it with exit 0 and its uvicorn with it."""
    home = tmp_path / "home"
    home.mkdir()
    env = base_env(home, CRYPTOFLOW_DATA_DIR=str(tmp_path / "data"))
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [VENV_BIN / "cryptoflow", "serve"], env=env, stdout=out, stderr=subprocess.STDOUT,
            preexec_fn=as_background_job, start_new_session=True,
        )  # fmt: skip
    started = []
    try:
        deadline = time.monotonic() + 300
        while "being served" not in log.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
        started = descendants(proc.pid)
        assert any("uvicorn" in " ".join(p.cmdline()) for p in started), started
        proc.send_signal(sig)
        try:
            code = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            pytest.fail(f"serve still running 60s after {sig.name}:\n{log.read_text()[-3000:]}")
        assert code == 0, log.read_text()[-3000:]
        deadline = time.monotonic() + 30
        while survivors(started) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert survivors(started) == []
    finally:
        for p in survivors(started):
            p.kill()
        stop(proc)
