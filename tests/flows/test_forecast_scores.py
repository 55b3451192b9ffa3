"""Live scores through Prefect, against a real Prefect API: the degraded event goes out once
per champion (read back from the API), the live artifacts and chart are published, and the
forecast flow scores its matured forecasts end to end (a real Keras champion)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from prefect import flow

from storage.layout import DataLayout
from storage.scores import ScoreStore
from tasks.forecast.events import EVENT_DEGRADED
from tasks.forecast.task import score_forecasts_task
from tests.support.live import (
    INTERVAL,
    SYMBOL,
    issue_rows,
    record_champion,
    store_candles,
    store_forecasts,
)
from tests.support.windows import real_candles

RESOURCE = f"cryptoflow.forecast.{SYMBOL}.{INTERVAL}"


@flow(name="score-once")
def _score_once(data_dir: str) -> dict:
    return score_forecasts_task(SYMBOL, INTERVAL, data_dir)


def _degraded_events(since: pd.Timestamp, expected: int, settle_s: float = 3.0) -> list:
    """The degraded events of the market since ``since``: waits until ``expected`` arrived
    (up to 30 s), then ``settle_s`` more so that an extra one would show."""
    from prefect.client.orchestration import get_client
    from prefect.events.filters import (
        EventFilter,
        EventNameFilter,
        EventOccurredFilter,
        EventResourceFilter,
    )

    event_filter = EventFilter(
        event=EventNameFilter(name=[EVENT_DEGRADED]),
        resource=EventResourceFilter(id=[RESOURCE]),
        occurred=EventOccurredFilter(since=since),
    )
    deadline = time.monotonic() + 30
    with get_client(sync_client=True) as client:
        events = client.read_events(filter=event_filter, limit=50).events
        while len(events) < expected and time.monotonic() < deadline:
            time.sleep(0.5)
            events = client.read_events(filter=event_filter, limit=50).events
        time.sleep(settle_s)
        return client.read_events(filter=event_filter, limit=50).events


@pytest.mark.slow
def test_degraded_event_once_per_champion_and_live_artifacts(
    prefect_api, data_dir, monkeypatch
):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    monkeypatch.setenv("CRYPTOFLOW_LIVE_WINDOW", "20")
    monkeypatch.setenv("CRYPTOFLOW_DEGRADED_SKILL", "-0.05")
    candles = real_candles(600)
    store_candles(data_dir, candles)
    record_champion(data_dir, "run-a")
    began = pd.Timestamp.now(tz="UTC") - pd.Timedelta("5s")
    root = str(data_dir)

    # nothing scored yet: no error, it says so
    nothing = _score_once(root)
    assert nothing["scored_issues"] == 0 and "nothing matured yet" in nothing["message"]

    # 1 % too high: degraded over 20 issues; scored twice more while still degraded
    store_forecasts(data_dir, issue_rows(candles, range(100, 130), "run-a", bias=0.01))
    first = _score_once(root)
    assert first["degraded"] and first["alert"]["skill"] < -0.05
    store_forecasts(data_dir, issue_rows(candles, range(130, 140), "run-a", bias=0.01))
    second = _score_once(root)
    assert second["degraded"] and second["alert"] is None
    events = _degraded_events(began, 1)
    assert len(events) == 1
    payload = events[0].payload
    assert payload["symbol"] == SYMBOL and payload["interval"] == INTERVAL
    assert payload["run_id"] == "run-a" and payload["model"] == "cnn2_relu"
    assert payload["skill"] == pytest.approx(first["alert"]["skill"])
    assert payload["n"] == 20 * 4 and payload["threshold"] == -0.05
    assert events[0].resource["prefect.resource.name"] == f"{SYMBOL} {INTERVAL} live forecasts"
    state = ScoreStore(DataLayout.at(data_dir).scores).read_state(SYMBOL, INTERVAL)
    assert state.degraded["run_id"] == "run-a"

    # a new champion, degraded too: exactly one more event, for it
    record_champion(data_dir, "run-b", model="gru_tanh_relu", epoch=2)
    store_forecasts(data_dir, issue_rows(candles, range(140, 170), "run-b",
                                         model="gru_tanh_relu", epoch=2, bias=0.01))
    third = _score_once(root)
    assert third["alert"]["run_id"] == "run-b"
    events = _degraded_events(began, 2)
    assert sorted(e.payload["run_id"] for e in events) == ["run-a", "run-b"]

    # the live table and the chart: published, and on disk
    with get_client(sync_client=True) as client:
        table = max(client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["live-btc-usdt-minute-5"])),
        ), key=lambda a: a.created)
        rows = json.loads(table.data) if isinstance(table.data, str) else table.data
        assert [r["scope"] for r in rows] == ["last 20 issues", "since promotion"]
        assert rows[1]["issues"] == 30 and float(rows[0]["skill"]) < -0.05
        md = max(client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=["live-chart-btc-usdt-minute-5"])),
        ), key=lambda a: a.created)
        assert "data:image/png;base64," in md.data and "gru_tanh_relu" in md.data
    chart = DataLayout.at(data_dir).reports / "live" / f"{SYMBOL}-{INTERVAL}.png"
    assert third["chart"] == str(chart) and chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_forecast_flow_scores_its_forecasts_once_their_candles_arrive(
    prefect_api, tmp_path, monkeypatch
):
    from flows.forecast import forecast
    from storage.candles import CandleStore
    from storage.forecasts import ForecastStore
    from tests.flows.test_forecast import FUTURE, ROWS, _make_champion

    made = _make_champion(tmp_path / "data")
    data_dir = str(made["data_dir"])
    first = forecast(symbols=[SYMBOL], intervals=[INTERVAL], data_dir=data_dir)
    assert first["live"]["scored_issues"] == 0 and first["live"]["pending_issues"] == 1
    assert "waiting for their candles" in first["live"]["message"]

    layout = DataLayout.at(data_dir)
    CandleStore(layout.candles).append(SYMBOL, INTERVAL, made["candles"].iloc[ROWS - FUTURE:])
    second = forecast(symbols=[SYMBOL], intervals=[INTERVAL], data_dir=data_dir)
    live = second["live"]
    assert live["scored_issues"] == 1 and live["pending_issues"] == 1  # the new issue waits
    assert live["champion"] == {"run_id": made["run_id"], "model": "cnn2_relu", "epoch": 1}

    # by hand: the first issue's stored forecasts minus the candles that arrived
    issued = pd.Timestamp(first["issued_at"])
    stored = ForecastStore(layout.forecasts).read(SYMBOL, INTERVAL)
    issue = stored[stored["issued_at"] == issued].sort_values(["model", "step"])
    truth = made["candles"].set_index("open_time")["close"]
    expected = issue["predicted_close"].to_numpy() - truth.loc[issue["target_time"]].to_numpy()
    scores = ScoreStore(layout.scores).read(SYMBOL, INTERVAL).sort_values(["model", "step"])
    np.testing.assert_array_equal(scores["error"].to_numpy(), expected)
    c = expected[: FUTURE] if issue["model"].iloc[0] == "cnn2_relu" else expected[FUTURE:]
    p = expected[FUTURE:] if issue["model"].iloc[0] == "cnn2_relu" else expected[: FUTURE]
    assert live["since_promotion"]["mse"] == pytest.approx(np.mean(c ** 2), rel=1e-12)
    assert live["since_promotion"]["skill"] == pytest.approx(
        1 - np.mean(c ** 2) / np.mean(p ** 2), rel=1e-12)

    # the champion's report shows its live scores; reporting again with no new score reuses it
    # (gate off: a 1-epoch model re-judged against persistence would be demoted to challenger)
    from flows.report import report

    monkeypatch.setenv("CRYPTOFLOW_CHAMPION_GATE", "off")
    page = Path(report(run_id=made["run_id"], data_dir=data_dir))
    text = page.read_text()
    assert "<h2>Live since promotion</h2>" in text and 'alt="live skill"' in text
    stamp = (page.parent / "inputs.sha256").read_text()
    assert report(run_id=made["run_id"], data_dir=data_dir) == str(page)
    assert (page.parent / "inputs.sha256").read_text() == stamp
    rescored = ScoreStore(layout.scores).read_state(SYMBOL, INTERVAL)
    assert rescored.champion.run_id == made["run_id"] and rescored.issues == 1
