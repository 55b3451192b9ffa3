"""The live-score store: layout, idempotent writes, the tail read, state round trip, bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from storage.errors import BadInputError, CorruptStoreError
from storage.layout import DataLayout
from storage.scores import SCORE_COLUMNS, ChampionKey, ErrorSums, ScoreState, ScoreStore

FIVE_MIN = pd.Timedelta(minutes=5)


def _scores(first: str, issues: int, run_id: str = "run-a", k: int = 2) -> pd.DataFrame:
    rows = []
    for i in range(issues):
        t = pd.Timestamp(first) + i * FIVE_MIN
        for model, epoch in (("cnn2_relu", 3), ("persistence", None)):
            for s in range(1, k + 1):
                rows.append({"model": model, "issued_at": t, "step": s,
                             "target_time": t + s * FIVE_MIN, "predicted_close": 100.0 + s,
                             "actual_close": 100.0, "error": float(s), "run_id": run_id,
                             "epoch": epoch})
    df = pd.DataFrame(rows)
    df["epoch"] = pd.array(df["epoch"], dtype="Int64")
    return df


def _store(data_dir) -> ScoreStore:
    return ScoreStore(DataLayout.at(data_dir).scores)


def test_rows_land_in_their_issue_day_and_a_rewrite_adds_nothing(data_dir):
    store = _store(data_dir)
    rows = _scores("2026-11-30T23:50Z", 4)
    assert store.write("BTC_USDT", "MINUTE_5", rows).added == 16
    series = data_dir / "scores" / "exchange=poloniex" / "symbol=BTC_USDT" / "interval=MINUTE_5"
    assert sorted(p.relative_to(series).as_posix() for p in series.rglob("*.parquet")) == [
        "year=2026/month=11/day=30/part.parquet", "year=2026/month=12/day=01/part.parquet"]
    before = {p: p.read_bytes() for p in series.rglob("*.parquet")}
    again = store.write("BTC_USDT", "MINUTE_5", rows)
    assert again.added == 0 and again.skipped == 16 and again.paths == ()
    assert {p: p.read_bytes() for p in series.rglob("*.parquet")} == before
    back = store.read("BTC_USDT", "MINUTE_5")
    assert list(back.columns) == list(SCORE_COLUMNS) and len(back) == 16
    assert str(back["issued_at"].dtype) == "datetime64[ms, UTC]"
    assert back.loc[back.model == "persistence", "epoch"].isna().all()


def test_tail_reads_the_newest_issues_of_a_run_from_the_newest_days_only(data_dir):
    store = _store(data_dir)
    store.write("BTC_USDT", "MINUTE_5", _scores("2026-10-31T23:00Z", 5, run_id="run-old"))
    store.write("BTC_USDT", "MINUTE_5", _scores("2026-11-30T23:40Z", 10))
    # the October day is never opened for a tail November and December can serve
    (october,) = [p for p in store.partitions("BTC_USDT", "MINUTE_5") if "month=10" in str(p)]
    october.write_bytes(b"garbage")
    tail = store.read_tail("BTC_USDT", "MINUTE_5", 6, run_id="run-a")
    assert tail["issued_at"].nunique() == 6 and set(tail["run_id"]) == {"run-a"}
    assert tail["issued_at"].min() == pd.Timestamp("2026-11-30T23:40Z") + 4 * FIVE_MIN
    with pytest.raises(CorruptStoreError, match="cryptoflow forecast --symbol BTC_USDT"):
        store.read_tail("BTC_USDT", "MINUTE_5", 11)  # needs October


def test_state_round_trips_and_an_unchanged_state_is_not_rewritten(data_dir):
    store = _store(data_dir)
    assert store.read_state("BTC_USDT", "MINUTE_5") == ScoreState()
    state = ScoreState(last_scored_ms=1_700_000_000_000,
                       champion=ChampionKey("run-a", "cnn2_relu", 3), issues=2,
                       sums={"cnn2_relu": ErrorSums(8, 0.1 + 0.2, 1 / 3)}, missing_targets=1)
    path = store.write_state("BTC_USDT", "MINUTE_5", state)
    assert store.read_state("BTC_USDT", "MINUTE_5") == state  # floats exactly
    mtime = path.stat().st_mtime_ns
    store.write_state("BTC_USDT", "MINUTE_5", state)
    assert path.stat().st_mtime_ns == mtime


@pytest.mark.parametrize("symbol, interval", [("../x", "MINUTE_5"), ("BTC_USDT", "MONTH_1"),
                                              ("BTC_USDT", "bogus")])
def test_bad_markets_are_refused_before_any_write(data_dir, symbol, interval):
    with pytest.raises(ValueError):
        _store(data_dir).write(symbol, interval, _scores("2026-12-01T00:00Z", 1))
    assert not (data_dir / "scores").exists()


def test_bad_rows_are_refused(data_dir):
    rows = _scores("2026-12-01T00:00Z", 2)
    rows.loc[0, "error"] = np.nan
    with pytest.raises(BadInputError, match="error must be finite"):
        _store(data_dir).write("BTC_USDT", "MINUTE_5", rows)
    with pytest.raises(BadInputError, match="appears twice"):
        _store(data_dir).write("BTC_USDT", "MINUTE_5", pd.concat([_scores("2026-12-01", 1)] * 2))
    assert not (data_dir / "scores").exists()
