"""End to end, as users run it: `prefect server start`, `prefect deploy --all`, a process worker.

Everything is real and on 127.0.0.1: the Prefect server (SQLite in a temporary PREFECT_HOME),
the replay server over the recorded Poloniex 5-minute candles, the worker and the flow-run
processes it starts. The pipeline runs with small settings (patched into the deployment, as a
user would in the UI) so the module finishes in minutes on 2 cores.
"""

from __future__ import annotations

import json
import subprocess
import time

import httpx
import pandas as pd
import pytest

from tests.support.paths import REPO_ROOT, shared_file
from tests.support.servers import VENV_BIN, background, base_env, prefect_server, replay_process

pytestmark = pytest.mark.slow

POLONIEX_5M = "poloniex-USDT_BTC-5m-2017-07-14--2017-08-09.csv"
# Small, fast settings: two models, tiny windows, two epochs.
SMALL = {
    "symbols": ["BTC_USDT"],
    "intervals": ["MINUTE_5"],
    "start": "2017-07-20T00:00:00Z",
    "past": 32,
    "future": 4,
    "models": ["cnn2_relu", "gru_tanh_leaky"],
    "epochs": 2,
    "batch_size": 128,
    "parallel": 2,
    "patience": None,
}
# Replay clock: 2017-07-25 00:00 UTC, so ~5 days of candles exist (fast to ingest and train).
NOW_MS = int(pd.Timestamp("2017-07-25T00:00:00Z").value // 1_000_000)
TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


class Api:
    """A tiny client of the Prefect REST API (what the UI itself calls)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.http = httpx.Client(base_url=url, timeout=60)

    def request(self, method: str, path: str, **kwargs) -> httpx.Response:
        """One call, retried like Prefect's own client does on 429/502/503 (a busy SQLite)."""
        for attempt in range(8):
            r = self.http.request(method, path, **kwargs)
            if r.status_code not in (429, 502, 503):
                break
            time.sleep(min(8.0, 0.5 * 2**attempt))
        r.raise_for_status()
        return r

    def post(self, path: str, body: dict | list | None = None) -> httpx.Response:
        return self.request("POST", path, json=body if body is not None else {})

    def deployment(self, flow: str, name: str) -> dict:
        return self.request("GET", f"/deployments/name/{flow}/{name}").json()

    def flow_run(self, run_id: str) -> dict:
        return self.request("GET", f"/flow_runs/{run_id}").json()

    def create_run(self, deployment_id: str, parameters: dict | None = None) -> dict:
        body = {"parameters": parameters} if parameters is not None else {}
        return self.post(f"/deployments/{deployment_id}/create_flow_run", body).json()

    def wait(self, run_id: str, timeout: float = 600) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = self.flow_run(run_id)
            if run["state_type"] in TERMINAL:
                return run
            time.sleep(1)
        raise TimeoutError(f"flow run {run_id} not finished after {timeout}s: {run['state_type']}")

    def task_runs(self, flow_run_id: str) -> list[dict]:
        body = {"flow_runs": {"id": {"any_": [flow_run_id]}}}
        return self.post("/task_runs/filter", body).json()

    def subflow_runs(self, parent_id: str) -> list[dict]:
        """All flow runs below ``parent_id`` (subflows, recursively)."""
        out, frontier = [], [parent_id]
        while frontier:
            trs = self.post(
                "/task_runs/filter", {"flow_runs": {"id": {"any_": frontier}}}
            ).json()
            ids = [t["id"] for t in trs]
            if not ids:
                break
            runs = self.post(
                "/flow_runs/filter", {"flow_runs": {"parent_task_run_id": {"any_": ids}}}
            ).json()
            out += runs
            frontier = [r["id"] for r in runs]
        return out

    def artifacts(self, flow_run_ids: list[str]) -> list[dict]:
        body = {"artifacts": {"flow_run_id": {"any_": flow_run_ids}}}
        return self.post("/artifacts/filter", body).json()


def run_cli(args: list[str], env: dict, timeout: float = 300) -> subprocess.CompletedProcess:
    proc = subprocess.run(args, env=env, cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, f"{args} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """Prefect server + replay server + `prefect deploy --all` + a process worker."""
    source = shared_file(POLONIEX_5M)
    tmp = tmp_path_factory.mktemp("e2e")
    home = tmp / "prefect-home"
    home.mkdir()
    data = tmp / "data"
    with prefect_server(home, tmp / "server.log", scheduler_seconds=2) as api_url:
        env = base_env(
            home,
            PREFECT_API_URL=api_url,
            CRYPTOFLOW_DATA_DIR=str(data),
            CRYPTOFLOW_RETRIES="2",
            CRYPTOFLOW_RETRY_DELAYS="[0.2]",
            CRYPTOFLOW_MAX_REQUESTS_PER_SECOND="0",
            PREFECT_WORKER_QUERY_SECONDS="1",
            PREFECT_WORKER_PREFETCH_SECONDS="5",
        )
        with replay_process(source, env, tmp / "replay.log", "--now", str(NOW_MS)) as replay:
            env["CRYPTOFLOW_POLONIEX_URL"] = replay
            run_cli([VENV_BIN / "prefect", "work-pool", "create", "cryptoflow-local",
                     "--type", "process"], env)
            run_cli([VENV_BIN / "prefect", "--no-prompt", "deploy", "--all"], env)
            api = Api(api_url)
            # Small settings as the deployments' defaults (what a user would set in the UI).
            for flow, name, params in [
                ("pipeline", "pipeline", SMALL),
                ("ingest", "ingest", {"symbols": ["BTC_USDT"], "start": SMALL["start"]}),
            ]:
                dep = api.deployment(flow, name)
                api.request("PATCH", f"/deployments/{dep['id']}", json={"parameters": params})
            with background([VENV_BIN / "prefect", "worker", "start", "--pool",
                             "cryptoflow-local", "--limit", "4"],
                            env, tmp / "worker.log", cwd=REPO_ROOT):
                yield {"api": api, "env": env, "data": data, "replay": replay, "tmp": tmp}


def settle_deployment(api: Api, deployment_id: str, timeout: float = 240) -> None:
    """Delete the deployment's not-yet-started runs and wait for its running ones to end."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        live = api.post("/flow_runs/filter", {
            "deployments": {"id": {"any_": [deployment_id]}},
            "flow_runs": {"state": {"type": {"any_": ["SCHEDULED", "PENDING", "RUNNING"]}}},
        }).json()
        if not live:
            return
        for run in live:
            if run["state_type"] == "SCHEDULED":
                api.request("DELETE", f"/flow_runs/{run['id']}")
        time.sleep(1)
    raise TimeoutError(f"runs of deployment {deployment_id} still live after {timeout}s")


def replay_requests(replay: str) -> list[dict]:
    return httpx.get(f"{replay}/_replay/requests", timeout=10).json()


def test_pipeline_deployment_runs_then_caches(stack):
    """`prefect deployment run pipeline/pipeline` completes; a re-run with no new candles is
    served from the caches: the training tasks are Cached and it takes a fraction of the time."""
    api, data = stack["api"], stack["data"]
    dep = api.deployment("pipeline", "pipeline")
    t0 = time.monotonic()
    out = run_cli([VENV_BIN / "prefect", "deployment", "run", "pipeline/pipeline"], stack["env"])
    run_id = next(line.split()[-1] for line in out.stdout.splitlines() if "UUID" in line)
    first = api.wait(run_id)
    cold = time.monotonic() - t0
    assert first["state_type"] == "COMPLETED", first["state"]
    assert first["deployment_id"] == dep["id"]

    # Outputs: candles, one window file, a run with both models, a report with a leaderboard.
    assert list((data / "candles").rglob("*.parquet"))
    assert len(list((data / "windows").glob("*.h5"))) == 1
    reports = list((data / "reports").glob("*/leaderboard.json"))
    assert len(reports) == 1
    rows = json.loads(reports[0].read_text())
    assert {r["model"] for r in rows} >= {"cnn2_relu", "gru_tanh_leaky", "persistence"}

    # Artifacts of the run and its subflows exist in the API.
    subflows = api.subflow_runs(run_id)
    assert {r["name"] for r in subflows}  # subflows were created
    kinds = {a["type"] for a in api.artifacts([run_id] + [r["id"] for r in subflows])}
    assert "table" in kinds and "markdown" in kinds

    t1 = time.monotonic()
    second = api.create_run(dep["id"])
    done = api.wait(second["id"])
    warm = time.monotonic() - t1
    assert done["state_type"] == "COMPLETED", done["state"]
    sub2 = api.subflow_runs(second["id"])
    train_tasks = [
        t for r in sub2 for t in api.task_runs(r["id"])
        if t["name"].split("-")[0] in SMALL["models"]
    ]
    assert len(train_tasks) == len(SMALL["models"]), [t["name"] for t in train_tasks]
    assert all(t["state"]["name"] == "Cached" for t in train_tasks), [
        (t["name"], t["state"]["name"]) for t in train_tasks
    ]
    assert warm < 0.5 * cold, (warm, cold)


def test_ingest_schedule_creates_runs_the_worker_executes(stack):
    """The ingest deployment's schedule (shortened to 5 s here) produces runs that complete."""
    api = stack["api"]
    dep = api.deployment("ingest", "ingest")
    api.post(f"/deployments/{dep['id']}/schedules",
             [{"schedule": {"interval": 5.0}, "active": True}])
    deadline = time.monotonic() + 180
    completed = []
    while time.monotonic() < deadline and len(completed) < 2:
        runs = api.post("/flow_runs/filter", {
            "deployments": {"id": {"any_": [dep["id"]]}},
            "flow_runs": {"state": {"type": {"any_": ["COMPLETED"]}}},
        }).json()
        completed = [x for x in runs if x.get("auto_scheduled")]
        time.sleep(2)
    # Stop scheduling before the other tests run: no schedule, no queued or running ingest
    # (the deployment's limit of 1 would cancel the next test's run otherwise).
    for s in api.request("GET", f"/deployments/{dep['id']}/schedules").json():
        api.request("DELETE", f"/deployments/{dep['id']}/schedules/{s['id']}")
    settle_deployment(api, dep["id"])
    assert len(completed) >= 2, "the schedule did not produce two completed ingest runs"


def _store_frame(data):
    from storage.candles import CandleStore

    return CandleStore(data / "candles").load("BTC_USDT", "MINUTE_5")


def test_retry_after_failed_fetches_resumes_without_refetching(stack):
    """Every request fails for a while: ingest exhausts its retries and the run Fails. The
    server heals; retrying the failed run (what the UI's Retry button does) completes it, the
    store equals the source, and no page that was already stored is fetched again."""
    from storage.recorded import load_recorded
    from storage.schema import to_ms

    api, replay, data = stack["api"], stack["replay"], stack["data"]
    now = NOW_MS + 2 * 86_400_000  # two more days of candles to fetch
    httpx.post(f"{replay}/_replay/clock", params={"now": now}, timeout=10).raise_for_status()
    httpx.post(f"{replay}/_replay/faults", params={"spec": "1-100000:500"}, timeout=10
               ).raise_for_status()
    before = _store_frame(data)
    dep = api.deployment("ingest", "ingest")
    run = api.create_run(dep["id"])
    failed = api.wait(run["id"])
    assert failed["state_type"] == "FAILED", failed["state"]
    assert "re-run" in (failed["state"]["message"] or "").lower() or "resume" in (
        failed["state"]["message"] or "").lower(), failed["state"]["message"]
    pd.testing.assert_frame_equal(_store_frame(data), before)  # nothing half-written

    httpx.post(f"{replay}/_replay/faults", params={"spec": ""}, timeout=10).raise_for_status()
    healed_at = len(replay_requests(replay))
    # The UI's Retry button: force the failed run back to Scheduled/AwaitingRetry.
    api.post(f"/flow_runs/{run['id']}/set_state", {
        "state": {"type": "SCHEDULED", "name": "AwaitingRetry", "message": "Retry from test"},
        "force": True,
    })
    retried = api.wait(run["id"])
    assert retried["state_type"] == "COMPLETED", retried["state"]
    assert retried["run_count"] >= 2

    stored = _store_frame(data)
    source = load_recorded(shared_file(POLONIEX_5M))
    closed = source[(to_ms(source["close_time"]) < now)
                     & (source["open_time"] >= stored["open_time"].iloc[0])].reset_index(drop=True)
    assert stored["open_time"].is_unique
    pd.testing.assert_frame_equal(stored.reset_index(drop=True), closed, check_like=False)

    last_before = int(to_ms(before["open_time"])[-1])
    ok = [r for r in replay_requests(replay)[healed_at:]
          if r.get("status") == 200 and "candles" in r.get("path", "")]
    assert ok, "the retry fetched nothing"
    assert all(int(r["params"]["startTime"]) > last_before for r in ok), ok[:3]


def test_overlapping_pipeline_runs_are_enqueued(stack):
    """Two pipeline runs started together: the deployment's limit of 1 (ENQUEUE) runs them one
    after the other, never both at once, and the stores stay intact."""
    api, data = stack["api"], stack["data"]
    dep = api.deployment("pipeline", "pipeline")
    a = api.create_run(dep["id"])
    b = api.create_run(dep["id"])
    seen_running_together = False
    waited = set()
    deadline = time.monotonic() + 900
    states = {}
    while time.monotonic() < deadline:
        states = {r: api.flow_run(r) for r in (a["id"], b["id"])}
        running = [r for r, x in states.items() if x["state_type"] == "RUNNING"]
        seen_running_together |= len(running) == 2
        waited |= {r for r, x in states.items() if x["state"]["name"] == "AwaitingConcurrencySlot"}
        if all(x["state_type"] in TERMINAL for x in states.values()):
            break
        time.sleep(0.5)
    assert all(x["state_type"] == "COMPLETED" for x in states.values()), states
    assert not seen_running_together
    assert waited, "neither run waited for the deployment's concurrency slot"
    frame = _store_frame(data)
    assert frame["open_time"].is_unique and frame["open_time"].is_monotonic_increasing


@pytest.fixture(scope="module")
def browser():
    import shutil

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
        ])
        yield b
        b.close()


def _ui(api: Api) -> str:
    return api.url.removesuffix("/api")


def _field(page, name: str):
    """The input of parameter ``name`` in the UI's run form."""
    import re

    label = page.locator(".schema-form-property__label", has_text=re.compile(rf"^{name}\b"))
    return page.locator(".schema-form-property").filter(has=label).locator("input").first


def _wait_for(found, seconds: float) -> None:
    """Poll ``found()`` until it is truthy or ``seconds`` pass (a bounded wait, no retry)."""
    deadline = time.monotonic() + seconds
    while not found() and time.monotonic() < deadline:
        time.sleep(0.5)


def test_ui_quick_run_custom_run_and_invalid_value(stack, browser):
    """In a real browser: Run → Quick run completes; a Custom run with one changed parameter
    runs with it; an invalid value is refused with a message naming the parameter."""
    api = stack["api"]
    dep = api.deployment("pipeline", "pipeline")
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    known = {r["id"] for r in api.post("/flow_runs/filter", {}).json()}

    def new_runs() -> list[dict]:
        runs = api.post("/flow_runs/filter", {
            "deployments": {"id": {"any_": [dep["id"]]}}}).json()
        return [r for r in runs if r["id"] not in known]

    shots = stack["tmp"]
    page.goto(f"{_ui(api)}/deployments/deployment/{dep['id']}", wait_until="networkidle")
    run_button = page.get_by_role("button", name="Run", exact=True)
    # One click each, no retry: the server waits for SQLite's lock instead of refusing
    # (PREFECT_SERVER_DATABASE_TIMEOUT in tests/support/servers.py).
    run_button.wait_for(state="visible", timeout=60_000)
    run_button.click()
    quick_item = page.get_by_text("Quick run", exact=True)
    quick_item.wait_for(state="visible", timeout=30_000)
    quick_item.click()
    _wait_for(new_runs, seconds=90)
    quick = new_runs()
    if len(quick) != 1:
        page.screenshot(path=str(shots / "quick-run.png"))
    assert len(quick) == 1, f"Quick run created no flow run (screenshot in {shots})"
    assert api.wait(quick[0]["id"])["state_type"] == "COMPLETED"
    known |= {quick[0]["id"]}

    page.goto(f"{_ui(api)}/deployments/deployment/{dep['id']}/run", wait_until="networkidle")
    epochs = _field(page, "epochs")
    epochs.fill("0")
    page.get_by_role("button", name="Submit").click()
    page.get_by_text("Validation failed for field 'epochs'").first.wait_for(timeout=15_000)
    time.sleep(1)
    assert new_runs() == [], "an invalid value started a run"

    # A fresh form for the valid submission (no error state left over from the refusal).
    page.goto(f"{_ui(api)}/deployments/deployment/{dep['id']}/run", wait_until="networkidle")
    epochs = _field(page, "epochs")
    epochs.wait_for(state="visible", timeout=60_000)
    epochs.fill("1")
    page.get_by_role("button", name="Submit").click()
    _wait_for(new_runs, seconds=90)
    custom = new_runs()
    if len(custom) != 1:
        page.screenshot(path=str(shots / "custom-run.png"))
    assert len(custom) == 1, f"Custom run created no flow run (screenshot in {shots})"
    assert custom[0]["parameters"]["epochs"] == 1
    assert custom[0]["parameters"]["models"] == SMALL["models"]  # the rest unchanged
    assert api.wait(custom[0]["id"])["state_type"] == "COMPLETED"
    page.close()
