"""Live scores on real candles and stored forecasts: hand-computed errors, idempotent re-runs,
incremental reads, holes, since-promotion resets, the degraded alert once per champion, bad
inputs refused before any write, corrupt files named with their rebuild."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from storage.errors import BadInputError, CorruptStoreError
from storage.forecasts import cast_forecasts
from storage.layout import DataLayout
from storage.scores import ScoreStore
from tasks.forecast.live import record_alert, score_market
from tests.support.live import (
    INTERVAL,
    SYMBOL,
    K,
    issue_rows,
    record_champion,
    score_files,
    store_candles,
    store_forecasts,
)
from tests.support.windows import real_candles

ROWS = 1200


@pytest.fixture(scope="module")
def candles():
    return real_candles(ROWS)


def _closes(candles: pd.DataFrame) -> dict[int, float]:
    return dict(zip(candles["open_time"].astype("int64"), candles["close"], strict=True))


def _hand_errors(rows: pd.DataFrame, closes: dict[int, float]) -> pd.DataFrame:
    out = cast_forecasts(rows)  # as stored: ms times
    out["actual"] = [closes.get(int(t)) for t in out["target_time"].astype("int64")]
    out = out.dropna(subset=["actual"]).astype({"actual": "float64"})
    out["error"] = out["predicted_close"] - out["actual"]
    return out


def test_scores_equal_hand_computed_errors_and_a_rerun_scores_nothing_twice(data_dir, candles):
    store_candles(data_dir, candles)
    record_champion(data_dir, "run-a")
    rows = issue_rows(candles, range(100, 400), "run-a")
    store_forecasts(data_dir, rows)
    live = score_market(data_dir, SYMBOL, INTERVAL, window=50, threshold=-0.05)
    assert live.scored_issues == 300 and live.pending_issues == 0 and live.missing_targets == 0

    stored = ScoreStore(DataLayout.at(data_dir).scores).read(SYMBOL, INTERVAL)
    hand = _hand_errors(rows, _closes(candles))
    merged = stored.merge(hand, on=["model", "issued_at", "step"], suffixes=("", "_hand"))
    assert len(merged) == len(stored) == len(hand) == 300 * K * 2
    np.testing.assert_array_equal(merged["error"], merged["error_hand"])
    np.testing.assert_array_equal(merged["actual_close"], merged["actual"])

    # since promotion: every issue; last N: the newest 50 issues, both by hand
    c, p = (hand[hand.model == m] for m in ("cnn2_relu", "persistence"))
    assert live.since_promotion.issues == 300 and live.since_promotion.n == 300 * K
    assert live.since_promotion.mse == pytest.approx(np.mean(c.error ** 2), rel=1e-12)
    assert live.since_promotion.mae == pytest.approx(np.mean(c.error.abs()), rel=1e-12)
    assert live.since_promotion.skill == pytest.approx(
        1 - np.mean(c.error ** 2) / np.mean(p.error ** 2), rel=1e-12)
    newest = sorted(set(c.issued_at))[-50:]
    cn, pn = c[c.issued_at.isin(newest)], p[p.issued_at.isin(newest)]
    assert live.last_n.issues == 50 and live.last_n.n == 50 * K
    assert live.last_n.skill == pytest.approx(
        1 - np.mean(cn.error ** 2) / np.mean(pn.error ** 2), rel=1e-12)
    assert live.last_scored == rows["issued_at"].max().isoformat()

    before = score_files(data_dir)
    again = score_market(data_dir, SYMBOL, INTERVAL, window=50, threshold=-0.05)
    assert again.scored_issues == 0 and again.scored_rows == 0
    assert again.since_promotion == live.since_promotion and again.last_n == live.last_n
    assert score_files(data_dir) == before  # byte for byte


def test_only_new_issues_are_read_and_unmatured_ones_wait(data_dir):
    """Issues across two months (the July file is unreadable once scored: a second scoring
    that read it would fail); the newest issues wait for their target candles."""
    candles = real_candles(6000)
    july_end = int((candles["open_time"] < pd.Timestamp("2017-08-01", tz="UTC")).sum())
    store_candles(data_dir, candles.iloc[: july_end + 200])
    record_champion(data_dir, "run-a")
    store_forecasts(data_dir, issue_rows(candles, range(july_end - 100, july_end + 198), "run-a"))
    first = score_market(data_dir, SYMBOL, INTERVAL, window=20)
    # the store ends at july_end + 199: issues up to july_end + 199 - K have all targets
    assert first.scored_issues == 100 + 200 - K
    assert first.pending_issues == 298 - first.scored_issues

    july = next(p for p in (DataLayout.at(data_dir).forecasts).rglob("*.parquet")
                if "month=07" in str(p))
    july.write_bytes(b"not parquet")
    store_candles(data_dir, candles.iloc[july_end + 200: july_end + 400])
    store_forecasts(data_dir, issue_rows(candles, range(july_end + 198, july_end + 300), "run-a"))
    second = score_market(data_dir, SYMBOL, INTERVAL, window=20)
    assert second.scored_issues == 298 - first.scored_issues + 102
    assert second.since_promotion.issues == 100 + 300
    assert second.pending_issues == 0


def test_a_missing_target_candle_is_skipped_on_that_step_for_every_model(data_dir, candles):
    hole = 300
    store_candles(data_dir, pd.concat([candles.iloc[:hole], candles.iloc[hole + 1:]]))
    record_champion(data_dir, "run-a")
    store_forecasts(data_dir, issue_rows(candles, range(290, 310), "run-a"))
    live = score_market(data_dir, SYMBOL, INTERVAL, window=5)
    # issues 296..299 target the hole at steps 4..1: one step each is not scored
    assert live.scored_issues == 20 and live.missing_targets == K
    assert live.since_promotion.n == 20 * K - K and live.since_promotion.issues == 20
    stored = ScoreStore(DataLayout.at(data_dir).scores).read(SYMBOL, INTERVAL)
    hole_ms = int(candles["open_time"].iloc[hole].value // 10**6)
    assert hole_ms not in set(stored["target_time"].astype("int64"))
    assert len(stored) == 2 * (20 * K - K)
    state = ScoreStore(DataLayout.at(data_dir).scores).read_state(SYMBOL, INTERVAL)
    assert state.missing_targets == K


def test_since_promotion_resets_on_a_new_champion_not_on_a_re_recorded_one(data_dir, candles):
    store_candles(data_dir, candles)
    record_champion(data_dir, "run-a")
    store_forecasts(data_dir, issue_rows(candles, range(100, 200), "run-a"))
    a = score_market(data_dir, SYMBOL, INTERVAL, window=30)
    assert a.since_promotion.issues == 100 and a.champion.run_id == "run-a"

    record_champion(data_dir, "run-a")  # a later report re-records it: same champion
    store_forecasts(data_dir, issue_rows(candles, range(200, 210), "run-a"))
    assert score_market(data_dir, SYMBOL, INTERVAL, window=30).since_promotion.issues == 110

    record_champion(data_dir, "run-b", model="gru_tanh_relu", epoch=9)
    store_forecasts(data_dir, issue_rows(candles, range(210, 260), "run-b",
                                         model="gru_tanh_relu", epoch=9, bias=-0.002))
    b = score_market(data_dir, SYMBOL, INTERVAL, window=30)
    assert b.champion.run_id == "run-b" and b.champion.model == "gru_tanh_relu"
    assert b.since_promotion.issues == 50 and b.since_promotion.n == 50 * K
    assert b.last_n.issues == 30
    hand = _hand_errors(issue_rows(candles, range(210, 260), "run-b", model="gru_tanh_relu",
                                   epoch=9, bias=-0.002), _closes(candles))
    mine = hand[hand.model == "gru_tanh_relu"]
    assert b.since_promotion.mse == pytest.approx(np.mean(mine.error ** 2), rel=1e-12)
    state = ScoreStore(DataLayout.at(data_dir).scores).read_state(SYMBOL, INTERVAL)
    assert set(state.sums) == {"gru_tanh_relu", "persistence"}


def test_degraded_alert_once_per_champion(data_dir, candles):
    store_candles(data_dir, candles)
    record_champion(data_dir, "run-a")
    # 1 % too high every time: far worse than persistence over 5-minute steps
    store_forecasts(data_dir, issue_rows(candles, range(100, 110), "run-a", bias=0.01))
    early = score_market(data_dir, SYMBOL, INTERVAL, window=20, threshold=-0.05)
    assert early.alert is None and not early.degraded  # fewer than N issues: not judged yet

    store_forecasts(data_dir, issue_rows(candles, range(110, 130), "run-a", bias=0.01))
    bad = score_market(data_dir, SYMBOL, INTERVAL, window=20, threshold=-0.05)
    assert bad.degraded and bad.last_n.skill < -0.05
    assert bad.alert == {
        "symbol": SYMBOL, "interval": INTERVAL, "model": "cnn2_relu", "run_id": "run-a",
        "epoch": 3, "skill": bad.last_n.skill, "n": 20 * K, "issues": 20, "window": 20,
        "threshold": -0.05, "mse": bad.last_n.mse, "mse_persistence": bad.last_n.mse_persistence,
        "last_scored": bad.last_scored,
    }
    # not yet recorded as sent: scoring again offers it again (at least once)
    assert score_market(data_dir, SYMBOL, INTERVAL, window=20, threshold=-0.05).alert is not None
    state = record_alert(data_dir, SYMBOL, INTERVAL, bad.alert)
    assert state.degraded["run_id"] == "run-a" and "emitted_at" in state.degraded

    store_forecasts(data_dir, issue_rows(candles, range(130, 140), "run-a", bias=0.01))
    still = score_market(data_dir, SYMBOL, INTERVAL, window=20, threshold=-0.05)
    assert still.degraded and still.alert is None  # sent once for this champion

    record_champion(data_dir, "run-b")  # a new champion re-arms it
    store_forecasts(data_dir, issue_rows(candles, range(140, 165), "run-b", bias=0.01))
    rearmed = score_market(data_dir, SYMBOL, INTERVAL, window=20, threshold=-0.05)
    assert rearmed.alert is not None and rearmed.alert["run_id"] == "run-b"
    assert rearmed.since_promotion.issues == 25


def test_nothing_to_score_yet_says_so(data_dir, candles):
    store_candles(data_dir, candles.iloc[:200])
    record_champion(data_dir, "run-a")
    empty = score_market(data_dir, SYMBOL, INTERVAL)
    assert empty.scored_issues == 0 and "no forecast issued yet" in empty.message
    store_forecasts(data_dir, issue_rows(candles, [199], "run-a"))
    waiting = score_market(data_dir, SYMBOL, INTERVAL)
    assert waiting.pending_issues == 1 and "1 issue(s) waiting" in waiting.message
    assert waiting.since_promotion.skill is None and waiting.to_dict()["last_n"]["issues"] == 0


@pytest.mark.parametrize("env, value", [("CRYPTOFLOW_LIVE_WINDOW", "0"),
                                        ("CRYPTOFLOW_LIVE_WINDOW", "day"),
                                        ("CRYPTOFLOW_DEGRADED_SKILL", "nan"),
                                        ("CRYPTOFLOW_DEGRADED_SKILL", "1.5")])
def test_bad_settings_are_refused_naming_the_variable_before_any_write(
    data_dir, candles, monkeypatch, env, value
):
    store_candles(data_dir, candles.iloc[:300])
    record_champion(data_dir, "run-a")
    store_forecasts(data_dir, issue_rows(candles, range(100, 110), "run-a"))
    monkeypatch.setenv(env, value)
    with pytest.raises(BadInputError, match=env):
        score_market(data_dir, SYMBOL, INTERVAL)
    assert not (data_dir / "scores").exists()


@pytest.mark.parametrize("kwargs, message", [
    ({"symbol": "../etc"}, "invalid symbol"),
    ({"interval": "MINUTE_7"}, "interval"),
    ({"window": 0}, "window"),
    ({"threshold": float("inf")}, "threshold"),
])
def test_bad_inputs_are_refused_before_any_write(data_dir, candles, kwargs, message):
    store_candles(data_dir, candles.iloc[:300])
    record_champion(data_dir, "run-a")
    store_forecasts(data_dir, issue_rows(candles, range(100, 110), "run-a"))
    args = {"symbol": SYMBOL, "interval": INTERVAL, **kwargs}
    with pytest.raises(ValueError, match=message):
        score_market(data_dir, args.pop("symbol"), args.pop("interval"), **args)
    assert not (data_dir / "scores").exists()


def test_no_champion_is_refused_saying_how_to_get_one(data_dir):
    with pytest.raises(BadInputError, match="cryptoflow run --symbol BTC_USDT"):
        score_market(data_dir, SYMBOL, INTERVAL)
    assert not (data_dir / "scores").exists()


def test_corrupt_score_files_name_their_rebuild(data_dir, candles):
    store_candles(data_dir, candles.iloc[:300])
    record_champion(data_dir, "run-a")
    store_forecasts(data_dir, issue_rows(candles, range(100, 150), "run-a"))
    score_market(data_dir, SYMBOL, INTERVAL, window=10)
    store = ScoreStore(DataLayout.at(data_dir).scores)
    state = store.state_path(SYMBOL, INTERVAL)
    good = state.read_bytes()
    state.write_text('{"version": 1, "last_scored_ms": "soon"')
    with pytest.raises(CorruptStoreError, match="score state") as err:
        score_market(data_dir, SYMBOL, INTERVAL, window=10)
    assert "cryptoflow forecast --symbol BTC_USDT --interval MINUTE_5" in str(err.value)
    assert str(store.series_dir(SYMBOL, INTERVAL)) in str(err.value)
    state.write_bytes(good)
    (part,) = store.partitions(SYMBOL, INTERVAL)
    part.write_bytes(b"PAR1 garbage")
    store_forecasts(data_dir, issue_rows(candles, range(150, 160), "run-a"))
    with pytest.raises(CorruptStoreError, match="unreadable score file") as err:
        score_market(data_dir, SYMBOL, INTERVAL, window=10)
    assert "cryptoflow forecast" in str(err.value)
    # the rebuild: drop the market's folder and score again from forecasts and candles
    import shutil

    shutil.rmtree(store.series_dir(SYMBOL, INTERVAL))
    rebuilt = score_market(data_dir, SYMBOL, INTERVAL, window=10)
    assert rebuilt.since_promotion.issues == 60
