"""The report's "live since promotion" section and its place in the report's fingerprint, on
real candles and stored forecasts (no training, no Prefect API)."""

from __future__ import annotations

import base64
import re

import pytest

from storage.layout import DataLayout
from storage.runs import RunStore
from tasks.forecast.live import score_market
from tasks.report.html import render_report_html
from tasks.report.inputs import report_fingerprint, report_inputs_task
from tasks.report.leaderboard import leaderboard_rows
from tasks.report.live import live_section, live_token
from tasks.report.markdown import render_report_markdown
from tests.support.live import (
    INTERVAL,
    SYMBOL,
    issue_rows,
    record_champion,
    store_candles,
    store_forecasts,
)
from tests.support.reports import _evaluation
from tests.support.windows import real_candles


@pytest.fixture
def market(data_dir, monkeypatch):
    monkeypatch.setenv("CRYPTOFLOW_LIVE_WINDOW", "20")  # the report's window: the setting
    candles = real_candles(800)
    store_candles(data_dir, candles)
    runs = RunStore(DataLayout.at(data_dir).runs)
    for run in ("run-a", "run-b"):
        runs.write_run(run, {"dataset_id": "d" * 20, "protocol": "honest", "models": []})
    record_champion(data_dir, "run-a")
    store_forecasts(data_dir, issue_rows(candles, range(100, 160), "run-a"))
    return {"data_dir": data_dir, "candles": candles, "runs": runs}


def test_the_live_section_shows_the_champions_scores_and_chart(market):
    data_dir = market["data_dir"]
    live = score_market(data_dir, SYMBOL, INTERVAL)
    section = live_section(str(data_dir), "run-a")
    assert section["summary"]["since_promotion"] == live.since_promotion.to_dict()
    assert section["summary"]["last_n"] == live.last_n.to_dict()
    ev = _evaluation()
    rows = leaderboard_rows(ev)
    page = render_report_html(ev.meta, rows, {}, None, section)
    assert "<h2>Live since promotion</h2>" in page
    cells = re.findall(r'<table class="live">(.*?)</table>', page, re.S)[0]
    assert "since promotion" in cells and "last 20 issues" in cells
    assert f"<td>{live.since_promotion.issues}</td>" in cells
    assert f"{live.since_promotion.skill:+.4f}" in cells
    (uri,) = re.findall(r'alt="live skill" src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert base64.b64decode(uri).startswith(b"\x89PNG")
    md = render_report_markdown(ev.meta, rows, {}, None, section)
    assert "## Live since promotion" in md and f"{live.last_n.skill:+.4f}" in md
    # without live scores the page has no such section
    assert "Live since promotion" not in render_report_html(ev.meta, rows, {})


def test_only_the_current_champion_gets_a_live_section(market):
    data_dir = market["data_dir"]
    score_market(data_dir, SYMBOL, INTERVAL)
    assert live_section(str(data_dir), "run-b") is None  # not a champion
    assert live_token(str(data_dir), "run-a") is not None
    record_champion(data_dir, "run-b")  # promoted, not scored yet: nothing live for either
    assert live_token(str(data_dir), "run-a") is None
    assert live_section(str(data_dir), "run-a") is None  # no longer the current champion
    assert live_token(str(data_dir), "run-b") is None
    assert live_section(str(data_dir), "run-b") is None


def test_new_scores_change_the_champions_report_fingerprint_only(market):
    data_dir, runs = market["data_dir"], market["runs"]
    root = str(data_dir)
    plain_a, plain_b = report_fingerprint(runs, "run-a"), report_fingerprint(runs, "run-b")
    assert report_inputs_task.fn(root, "run-a")[1] == plain_a  # nothing scored yet
    score_market(data_dir, SYMBOL, INTERVAL)
    first = report_inputs_task.fn(root, "run-a")[1]
    assert first != plain_a
    score_market(data_dir, SYMBOL, INTERVAL)  # nothing new: the same report
    assert report_inputs_task.fn(root, "run-a")[1] == first
    store_forecasts(data_dir, issue_rows(market["candles"], range(160, 170), "run-a"))
    score_market(data_dir, SYMBOL, INTERVAL)
    assert report_inputs_task.fn(root, "run-a")[1] not in (first, plain_a)
    assert report_inputs_task.fn(root, "run-b")[1] == plain_b
