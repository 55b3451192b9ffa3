"""Steps of the trigger test, each run in its own process against ``$PREFECT_API_URL`` (as a
worker or a user would): ``python -m tests.support.trigger_driver STEP ARGS...``.

- ``apply``: register the ingest, forecast and pipeline deployments of ``prefect.yaml`` with
  their triggers (the pipeline's "after ingest" trigger switched on), no schedules.
- ``ingest-deployment URL DATA_DIR SYMBOL...``: a run of the ingest *deployment*, executed here
  by Prefect's flow engine (what a worker does): its events name the deployment.
- ``ingest-bare URL DATA_DIR SYMBOL...``: the ingest flow called as the pipeline calls it (a
  run of no deployment).
- ``degraded SYMBOL INTERVAL``: the forecast flow's degraded-skill event for that market, sent
  by the function the scoring task sends it with.
"""

from __future__ import annotations

import dataclasses
import json
import sys

START = "2017-07-20T00:00:00Z"


def apply() -> None:
    from deployments.definitions import load_specs, runner_deployments

    specs = []
    for spec in load_specs():
        if spec.name not in {"ingest", "forecast", "pipeline"}:
            continue
        triggers = tuple({**t, "enabled": True} for t in spec.triggers)
        specs.append(dataclasses.replace(spec, triggers=triggers))
    ids = {d.name: str(d.apply()) for d in runner_deployments(specs, schedules=False)}
    print(json.dumps(ids))


def ingest_deployment(url: str, data_dir: str, symbols: list[str]) -> None:
    from prefect import get_client
    from prefect.flow_engine import run_flow

    from flows.ingest import ingest

    with get_client(sync_client=True) as client:
        dep = client.read_deployment_by_name("ingest/ingest")
        run = client.create_flow_run_from_deployment(
            dep.id, parameters={"symbols": symbols, "start": START, "base_url": url,
                                "data_dir": data_dir},
        )
    run_flow(ingest, flow_run=run, parameters=run.parameters)
    print(json.dumps({"flow_run_id": str(run.id)}))


def ingest_bare(url: str, data_dir: str, symbols: list[str]) -> None:
    from flows.ingest import ingest

    print(json.dumps(ingest(symbols=symbols, start=START, base_url=url, data_dir=data_dir)))


def degraded(symbol: str, interval: str) -> None:
    from tasks.forecast.events import emit_degraded

    emit_degraded({"symbol": symbol, "interval": interval, "model": "cnn2_relu",
                   "run_id": "r", "skill": -1.0, "n": 10, "threshold": -0.05})


def main(argv: list[str]) -> None:
    step, args = argv[0], argv[1:]
    if step == "apply":
        apply()
    elif step == "ingest-deployment":
        ingest_deployment(args[0], args[1], args[2:])
    elif step == "ingest-bare":
        ingest_bare(args[0], args[1], args[2:])
    elif step == "degraded":
        degraded(args[0], args[1])
    else:
        raise SystemExit(f"unknown step {step}")
    from prefect.events.worker import EventsWorker

    EventsWorker.drain_all(timeout=30)


if __name__ == "__main__":
    main(sys.argv[1:])
