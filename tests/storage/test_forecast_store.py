"""The forecast store: layout, atomic idempotent writes per issue, reads, bad input and a
corrupt file."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pyarrow.dataset as pads
import pytest

from storage.errors import BadInputError, CorruptStoreError
from storage.forecasts import FORECAST_COLUMNS, ForecastStore
from storage.layout import DataLayout

FIVE_MIN = pd.Timedelta(minutes=5)


def _issue(issued_at: str, k: int = 3, champion: str = "cnn2_relu", base: float = 100.0):
    t = pd.Timestamp(issued_at)
    steps = np.arange(1, k + 1)
    frames = []
    for model, epoch in ((champion, 7), ("persistence", None)):
        frames.append(pd.DataFrame({
            "model": model,
            "issued_at": t,
            "step": steps,
            "target_time": [t + s * FIVE_MIN for s in steps],
            "predicted_close": base + (steps if epoch else 0.0),
            "run_id": "20261201T000000Z-abc",
            "epoch": pd.array([epoch] * k, dtype="Int64"),
            "dataset_id": "0123456789abcdef0123",
        }))
    return pd.concat(frames, ignore_index=True)


def _store(data_dir) -> ForecastStore:
    return ForecastStore(DataLayout.at(data_dir).forecasts)


def test_rows_land_in_the_month_of_issue_and_read_back_typed(data_dir):
    store = _store(data_dir)
    rows = pd.concat([_issue("2026-11-30T23:55Z"), _issue("2026-12-01T00:00Z", base=101)])
    result = store.write("BTC_USDT", "MINUTE_5", rows)
    assert result.added == 12 and result.skipped_issues == 0
    series = data_dir / "forecasts" / "exchange=poloniex" / "symbol=BTC_USDT" / "interval=MINUTE_5"
    assert sorted(p.relative_to(series).as_posix() for p in series.rglob("*.parquet")) == [
        "year=2026/month=11/part.parquet", "year=2026/month=12/part.parquet",
    ]
    back = store.read("BTC_USDT", "MINUTE_5")
    assert list(back.columns) == list(FORECAST_COLUMNS) and len(back) == 12
    assert str(back["issued_at"].dtype) == "datetime64[ms, UTC]"
    assert str(back["epoch"].dtype) == "Int64"
    assert back.loc[back.model == "persistence", "epoch"].isna().all()
    assert (back.loc[back.model == "cnn2_relu", "epoch"] == 7).all()
    # read(since=) keeps issues at or after it; latest() is the newest issue of every model
    since = store.read("BTC_USDT", "MINUTE_5", since="2026-12-01T00:00Z")
    assert set(since["issued_at"]) == {pd.Timestamp("2026-12-01T00:00Z")}
    latest = store.latest("BTC_USDT", "MINUTE_5")
    assert len(latest) == 6 and set(latest["model"]) == {"cnn2_relu", "persistence"}
    assert latest["predicted_close"].tolist() == [102, 103, 104, 101, 101, 101]
    # the store is a Hive dataset pandas and pyarrow read directly (lock and temp files hidden)
    table = pads.dataset(data_dir / "forecasts", format="parquet", partitioning="hive").to_table()
    assert table.num_rows == 12
    assert set(table.column("symbol").to_pylist()) == {"BTC_USDT"}
    assert len(pd.read_parquet(data_dir / "forecasts")) == 12


def test_writing_an_issue_again_changes_nothing(data_dir):
    store = _store(data_dir)
    first = store.write("BTC_USDT", "MINUTE_5", _issue("2026-12-01T00:00Z"))
    (path,) = first.paths
    before = (open(path, "rb").read(), os.stat(path).st_mtime_ns)
    # the same issue again, even with other numbers: nothing is written
    again = store.write("BTC_USDT", "MINUTE_5", _issue("2026-12-01T00:00Z", base=999))
    assert again.added == 0 and again.skipped_issues == 2 and again.paths == ()
    assert (open(path, "rb").read(), os.stat(path).st_mtime_ns) == before
    # a new issue beside an old one: only the new rows are added
    both = pd.concat([_issue("2026-12-01T00:00Z"), _issue("2026-12-01T00:05Z")])
    more = store.write("BTC_USDT", "MINUTE_5", both)
    assert more.added == 6 and more.skipped_issues == 2
    assert len(store.read("BTC_USDT", "MINUTE_5")) == 12


@pytest.mark.parametrize("symbol", ["../BTC_USDT", "BTC/USDT", "", "btc usdt"])
def test_a_bad_symbol_is_refused_before_any_write(data_dir, symbol):
    with pytest.raises(ValueError, match="invalid symbol"):  # BadInputError is a ValueError
        _store(data_dir).write(symbol, "MINUTE_5", _issue("2026-12-01T00:00Z"))
    assert not (data_dir / "forecasts").exists()


def test_bad_rows_are_refused_before_any_write(data_dir):
    rows = _issue("2026-12-01T00:00Z")
    rows.loc[0, "predicted_close"] = np.nan
    with pytest.raises(BadInputError, match="predicted_close"):
        _store(data_dir).write("BTC_USDT", "MINUTE_5", rows)
    twice = pd.concat([_issue("2026-12-01T00:00Z")] * 2)
    with pytest.raises(BadInputError, match="twice"):
        _store(data_dir).write("BTC_USDT", "MINUTE_5", twice)
    assert not list((data_dir / "forecasts").rglob("*.parquet"))


def test_a_missing_market_reads_empty_and_a_corrupt_file_names_itself(data_dir):
    store = _store(data_dir)
    assert store.read("BTC_USDT", "MINUTE_5").empty
    assert list(store.latest("BTC_USDT", "MINUTE_5").columns) == list(FORECAST_COLUMNS)
    (path,) = store.write("BTC_USDT", "MINUTE_5", _issue("2026-12-01T00:00Z")).paths
    open(path, "wb").write(b"not parquet")
    with pytest.raises(CorruptStoreError, match="part.parquet") as err:
        store.read("BTC_USDT", "MINUTE_5")
    assert "cryptoflow forecast --symbol BTC_USDT --interval MINUTE_5" in str(err.value)


def test_a_read_since_skips_the_row_groups_before_it(data_dir, monkeypatch):
    """Rows are stored in row groups sorted by issue time, each with its min/max statistics
    (what lets ``read(since=)`` skip the groups before ``since``); the read returns exactly
    the rows at or after it."""
    import pyarrow.parquet as pq

    import storage.forecasts as forecasts

    monkeypatch.setattr(forecasts, "ROW_GROUP_ROWS", 6)  # one issue (2 models x 3 steps)
    store = _store(data_dir)
    times = pd.date_range("2026-12-01T00:00Z", periods=5, freq="5min")
    store.write("BTC_USDT", "MINUTE_5",
                pd.concat([_issue(t.isoformat(), base=100 + i) for i, t in enumerate(times)]))
    (path,) = store.partitions("BTC_USDT", "MINUTE_5")
    meta = pq.ParquetFile(path).metadata
    assert meta.num_row_groups == 5
    back = store.read("BTC_USDT", "MINUTE_5", since=times[3])
    assert sorted(set(back["issued_at"])) == list(times[3:]) and len(back) == 12
    stats = [meta.row_group(i).column(1).statistics for i in range(5)]
    assert [s.min for s in stats] == [s.max for s in stats]  # one issue time per row group
