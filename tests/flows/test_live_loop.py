"""The live loop end to end, two markets, against the replay with a moving clock and a real
Prefect API: the pipeline trains a separate champion per market -> forecast -> the clock moves
K candles -> ingest -> forecast: the first issue is scored against the candles that arrived,
each error equal to the stored forecast minus the stored close; a re-run issues and scores
nothing twice."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from storage.recorded import load_recorded
from tests.support.paths import shared_file
from tests.support.realdata import POLONIEX_5M

ROWS = 2600
K = 4
MARKETS = ["BTC_USDT", "ETH_USDT"]
INTERVAL = "MINUTE_5"
FIVE_MIN = 300_000
PARAMS = {"past": 32, "future": K, "stride": 4, "scaler": "window", "models": ["cnn2_relu"],
          "epochs": 1, "batch_size": 128, "parallel": 1, "start": "2017-07-14"}


@pytest.fixture(scope="module")
def markets():
    """BTC as recorded; "ETH" the same candles at 6 % of the price, so the markets differ."""
    btc = load_recorded(shared_file(POLONIEX_5M)).iloc[:ROWS].reset_index(drop=True)
    eth = btc.copy()
    for col in ("open", "high", "low", "close"):
        eth[col] = btc[col] * 0.06
    return {"BTC_USDT": btc, "ETH_USDT": eth}


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_two_markets_forecast_and_are_scored_when_the_truth_arrives(
    prefect_api, data_dir, markets, monkeypatch
):
    from cryptoflow.replay import ReplayServer
    from flows.forecast import forecast
    from flows.ingest import ingest
    from flows.pipeline import pipeline
    from storage.candles import CandleStore
    from storage.champions import ChampionRegistry
    from storage.forecasts import ForecastStore
    from storage.layout import DataLayout
    from tasks.forecast.live import live_view

    monkeypatch.setenv("CRYPTOFLOW_MAX_REQUESTS_PER_SECOND", "0")
    monkeypatch.setenv("CRYPTOFLOW_CHAMPION_GATE", "off")  # a 1-epoch model becomes champion
    layout = DataLayout.at(data_dir)
    btc = markets["BTC_USDT"]
    # the clock: every candle but the last 2K has closed
    t0 = int(btc["open_time"].iloc[ROWS - 2 * K].value // 1_000_000) + FIVE_MIN
    with ReplayServer(btc, symbol="BTC_USDT", markets={"ETH_USDT": markets["ETH_USDT"]},
                      now_ms=t0) as srv:
        result = pipeline(symbols=MARKETS, intervals=[INTERVAL], base_url=srv.url,
                          data_dir=str(data_dir), **PARAMS)
        by_market = result["markets"]
        runs = {m: by_market[f"{m} {INTERVAL}"]["run_id"] for m in MARKETS}
        assert len(set(runs.values())) == 2 and result["run_id"] == runs["BTC_USDT"]
        registry = ChampionRegistry(layout.reports)
        for m in MARKETS:  # a separate champion per market, from that market's own run
            champion = registry.current("honest", m, INTERVAL)
            assert champion is not None and champion["run_id"] == runs[m]
        index = json.loads((layout.reports / "markets.json").read_text())["markets"]
        assert {(r["symbol"], r["champion"], r["run_id"]) for r in index} == {
            (m, "cnn2_relu", runs[m]) for m in MARKETS}
        assert Path(result["summary"]).read_text().count("cnn2_relu") >= 2

        first = forecast(symbols=MARKETS, intervals=[INTERVAL], data_dir=str(data_dir))
        store = ForecastStore(layout.forecasts)
        candles = CandleStore(layout.candles)
        for m in MARKETS:
            rows = store.read(m, INTERVAL)
            assert len(rows) == 2 * K and set(rows["run_id"]) == {runs[m]}
            newest = candles.last_open_time(m, INTERVAL)
            assert (rows["issued_at"] == newest).all()
        assert first["markets"][f"ETH_USDT {INTERVAL}"]["added"] == 2 * K

        # K candles later the truth of the first issue has arrived
        srv.set_now(t0 + K * FIVE_MIN)
        ingest(symbols=MARKETS, interval=INTERVAL, base_url=srv.url, data_dir=str(data_dir))
        second = forecast(symbols=MARKETS, intervals=[INTERVAL], data_dir=str(data_dir))
        for m in MARKETS:
            assert second["markets"][f"{m} {INTERVAL}"]["added"] == 2 * K
            stored = store.read(m, INTERVAL)
            issued = stored["issued_at"].drop_duplicates().tolist()
            assert len(issued) == 2 and issued[1] - issued[0] == pd.Timedelta(minutes=5 * K)
            # by hand: the first issue's errors from the stored forecasts and stored closes
            truth = candles.load(m, INTERVAL).set_index("open_time")["close"]
            one = stored[stored["issued_at"] == issued[0]]
            expected = one["predicted_close"].to_numpy() - truth.loc[one["target_time"]].to_numpy()
            assert np.isfinite(expected).all()
            _check_scores(layout, m, one, expected)

        # the index shows each market's live skill, from its own scores
        index = {r["symbol"]: r for r in json.loads(
            (layout.reports / "markets.json").read_text())["markets"]}
        for m in MARKETS:
            view = live_view(layout.root, m, INTERVAL, runs[m])
            assert index[m]["live_issues"] == 1
            assert index[m]["live_skill_since_promotion"] == pytest.approx(
                view.since_promotion.skill)

        # nothing new: nothing issued, nothing scored again, not a byte changed
        before = _files(layout.root / "forecasts") | _files(_scores_root(layout))
        again = forecast(symbols=MARKETS, intervals=[INTERVAL], data_dir=str(data_dir))
        assert all(v["added"] == 0 for v in again["markets"].values())
        assert _files(layout.root / "forecasts") | _files(_scores_root(layout)) == before


def _scores_root(layout) -> Path:
    return layout.scores


def _check_scores(layout, market: str, issue_rows: pd.DataFrame, expected: np.ndarray) -> None:
    """The scored errors of one issue equal ``expected`` (predicted - actual, per row), and the
    market's live metrics are the champion's and persistence's MSE on those pairs."""
    from storage.scores import ScoreStore
    from tasks.forecast.live import live_view

    scores = ScoreStore(layout.scores).read(market, INTERVAL)
    key = ["model", "issued_at", "step"]
    assert set(scores["issued_at"]) == set(issue_rows["issued_at"])  # only the matured issue
    got = issue_rows[key].merge(scores, on=key, how="left")
    np.testing.assert_allclose(got["error"].to_numpy(), expected, rtol=1e-12)
    champion = issue_rows["model"][issue_rows["model"] != "persistence"].iloc[0]
    mine = expected[(issue_rows["model"] == champion).to_numpy()]
    naive = expected[(issue_rows["model"] == "persistence").to_numpy()]
    view = live_view(layout.root, market, INTERVAL, str(issue_rows["run_id"].iloc[0]))
    assert view is not None and view.since_promotion.issues == 1
    assert view.since_promotion.mse == pytest.approx(np.mean(mine**2), rel=1e-9)
    assert view.since_promotion.mse_persistence == pytest.approx(np.mean(naive**2), rel=1e-9)
    assert view.since_promotion.skill == pytest.approx(
        1 - np.mean(mine**2) / np.mean(naive**2), rel=1e-9)
