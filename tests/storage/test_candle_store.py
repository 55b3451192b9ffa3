"""Candle store: real Parquet files in temporary folders, real market data where it adds value."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import storage.candles.parquet as parquet_mod
from storage.candles import CandleStore, StoreLockedError
from storage.errors import CorruptStoreError
from storage.recorded import load_recorded
from storage.schema import CANDLE_COLUMNS, CANDLE_DTYPES, Interval, cast_candles
from tests.support.paths import REPO_ROOT, shared_file
from tests.support.realdata import BITFINEX_1M_2015, POLONIEX_5M

SYM = "BTC_USDT"
M5 = Interval.MINUTE_5


def synthetic(start: str, n: int, interval: Interval = M5, seed: int = 0) -> pd.DataFrame:
    """``n`` contiguous, consistent candles from ``start``."""
    rng = np.random.default_rng(seed)
    open_ms = pd.Timestamp(start, tz="UTC").value // 1_000_000 + np.arange(n) * interval.ms
    close = 100 + rng.standard_normal(n).cumsum()
    open_ = close + rng.standard_normal(n) * 0.1
    return cast_candles(
        pd.DataFrame(
            {
                "open_time": open_ms,
                "open": open_,
                "high": np.maximum(open_, close) + 0.5,
                "low": np.minimum(open_, close) - 0.5,
                "close": close,
                "volume_base": rng.random(n),
                "volume_quote": rng.random(n) * 100,
                "trade_count": rng.integers(0, 50, n),
                "close_time": open_ms + interval.ms - 1,
            }
        )
    )


def files_under(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def store(tmp_path: Path) -> CandleStore:
    return CandleStore(tmp_path / "candles")


# --- round trip, layout --------------------------------------------------------------------------


def test_round_trip_real_poloniex_is_exact_and_typed(store: CandleStore) -> None:
    src = load_recorded(shared_file(POLONIEX_5M))
    result = store.append(SYM, "MINUTE_5", src)
    assert result.added == len(src) == 7673
    assert result.first_new == src["open_time"].iloc[0]
    assert result.last_new == src["open_time"].iloc[-1]
    assert result.months_written == ["2017-07", "2017-08"]
    loaded = store.load(SYM, M5)
    assert {c: str(t) for c, t in loaded.dtypes.items()} == CANDLE_DTYPES
    pd.testing.assert_frame_equal(loaded, src, check_exact=True)
    # the files themselves carry the exact Arrow types (other readers see the same schema)
    schema = pq.read_schema(store.partitions(SYM, M5)[0])
    assert schema.field("open_time").type == pa.timestamp("ms", tz="UTC")
    assert schema.field("close_time").type == pa.timestamp("ms", tz="UTC")
    assert schema.field("trade_count").type == pa.int64()
    assert schema.names == list(CANDLE_COLUMNS)
    assert store.last_open_time(SYM, M5) == src["open_time"].iloc[-1]


def test_partition_layout_on_disk(store: CandleStore) -> None:
    src = load_recorded(shared_file(POLONIEX_5M))
    store.append(SYM, M5, src)
    series = "exchange=poloniex/symbol=BTC_USDT/interval=MINUTE_5"
    assert files_under(store.root) == {
        f"{series}/year=2017/month=07/part.parquet",
        f"{series}/year=2017/month=08/part.parquet",
        f"{series}/.lock",
    }
    july = pq.read_table(store.root / series / "year=2017" / "month=07" / "part.parquet")
    months = pd.DatetimeIndex(july.column("open_time").to_pandas()).month
    assert set(months) == {7}
    # the Hive layout is readable by a generic reader too (temp and lock files are hidden)
    ds = pq.read_table(store.root, filters=[("symbol", "=", "BTC_USDT")])
    assert ds.num_rows == len(src)


def test_load_range_reads_only_months_in_range(store: CandleStore) -> None:
    src = load_recorded(shared_file(POLONIEX_5M))
    store.append(SYM, M5, src)
    start, end = "2017-07-20 00:00", pd.Timestamp("2017-07-21 12:00", tz="UTC")
    expected = src[(src.open_time >= pd.Timestamp(start, tz="UTC")) & (src.open_time <= end)]
    # corrupt August: a range inside July must not touch it
    (store.partitions(SYM, M5)[1]).write_bytes(b"not parquet")
    got = store.load(SYM, M5, start=start, end=end)
    pd.testing.assert_frame_equal(got, expected.reset_index(drop=True), check_exact=True)
    assert got.open_time.iloc[0] == pd.Timestamp(start, tz="UTC")
    with pytest.raises(CorruptStoreError, match="unreadable candle partition"):
        store.load(SYM, M5)
    with pytest.raises(ValueError, match="after end"):
        store.load(SYM, M5, start="2017-08-01", end="2017-07-01")


# --- appends -------------------------------------------------------------------------------------


def test_overlapping_pages_add_only_new_rows(store: CandleStore) -> None:
    src = load_recorded(shared_file(POLONIEX_5M))
    total = 0
    for lo in range(0, len(src), 400):  # 500-candle pages overlapping by 100
        page = src.iloc[lo : lo + 500]
        result = store.append(SYM, M5, page)
        expected_new = len(page) if lo == 0 else max(0, len(page) - 100)
        assert result.added == expected_new
        assert result.conflicts == 0
        total += result.added
    assert total == len(src)
    pd.testing.assert_frame_equal(store.load(SYM, M5), src, check_exact=True)
    again = store.append(SYM, M5, src.iloc[1000:1500])
    assert (again.added, again.first_new, again.months_written) == (0, None, [])


def test_only_touched_months_are_rewritten(store: CandleStore) -> None:
    src = load_recorded(shared_file(POLONIEX_5M))
    aug_start = int(np.searchsorted(src.open_time, pd.Timestamp("2017-08-01", tz="UTC")))
    store.append(SYM, M5, src.iloc[: aug_start + 100])
    july, aug = store.partitions(SYM, M5)
    july_stat, aug_stat = july.stat(), aug.stat()
    # a page straddling the month boundary whose July rows are all stored: only August changes
    result = store.append(SYM, M5, src.iloc[aug_start - 50 : aug_start + 300])
    assert result.added == 200
    assert result.months_written == ["2017-08"]
    assert (july.stat().st_ino, july.stat().st_mtime_ns) == (
        july_stat.st_ino,
        july_stat.st_mtime_ns,
    )
    assert aug.stat().st_ino != aug_stat.st_ino
    pd.testing.assert_frame_equal(
        store.load(SYM, M5), src.iloc[: aug_start + 300].reset_index(drop=True), check_exact=True
    )


def test_backfill_before_and_inside_stored_range_keeps_order(store: CandleStore) -> None:
    src = load_recorded(shared_file(POLONIEX_5M))
    store.append(SYM, M5, src.iloc[3000:4000])
    store.append(SYM, M5, src.iloc[:500])
    store.append(SYM, M5, pd.concat([src.iloc[500:3000], src.iloc[3500:3600]]))  # unsorted ok
    pd.testing.assert_frame_equal(
        store.load(SYM, M5), src.iloc[:4000].reset_index(drop=True), check_exact=True
    )


def test_open_candle_is_dropped_closed_one_kept(store: CandleStore) -> None:
    page = synthetic("2024-03-01", 10)
    last_open = int(page.open_time.iloc[-1].value // 1_000_000)
    last_close = int(page.close_time.iloc[-1].value // 1_000_000)
    assert last_close == last_open + M5.ms - 1
    # server clock on the last millisecond of the last candle: it is still open
    r = store.append(SYM, M5, page, server_now_ms=last_close)
    assert (r.added, r.dropped_open) == (9, 1)
    assert store.last_open_time(SYM, M5) == page.open_time.iloc[-2]
    # one millisecond later its close time has passed: it is stored
    r = store.append(SYM, M5, page, server_now_ms=last_close + 1)
    assert (r.added, r.dropped_open, r.last_new) == (1, 0, page.open_time.iloc[-1])
    pd.testing.assert_frame_equal(store.load(SYM, M5), page, check_exact=True)


def test_identical_duplicates_ignored_and_stored_wins_over_differing(store: CandleStore) -> None:
    page = synthetic("2024-03-01", 20)
    store.append(SYM, M5, page)
    fp = store.fingerprint(SYM, M5)
    changed = page.iloc[5:15].copy()
    changed.loc[changed.index[0], "close"] = changed["close"].iloc[0] + 0.001
    changed.loc[changed.index[0], "high"] = changed[["high", "close"]].iloc[0].max()
    more = synthetic("2024-03-01", 25).iloc[20:]
    r = store.append(SYM, M5, pd.concat([changed, more, more.iloc[:2]]))  # dup rows inside too
    assert (r.added, r.conflicts) == (5, 1)
    loaded = store.load(SYM, M5)
    pd.testing.assert_frame_equal(loaded.iloc[:20], page, check_exact=True)
    assert store.fingerprint(SYM, M5) != fp


# --- validation ----------------------------------------------------------------------------------


def _bad_frames() -> dict[str, pd.DataFrame]:
    good = synthetic("2024-03-01", 5)
    out = {}
    df = good.copy()
    df.loc[2, "close"] = np.nan
    out["NaN"] = df
    df = good.copy()
    df.loc[1, "high"] = df.loc[1, "low"] - 1
    out["inconsistent"] = df
    df = good.copy()
    df["open_time"] = df["open_time"] + pd.Timedelta(minutes=1)
    df["close_time"] = df["close_time"] + pd.Timedelta(minutes=1)
    out["grid"] = df
    df = good.copy()
    df["close_time"] = df["close_time"] + pd.Timedelta(milliseconds=1)
    out["close_time"] = df
    out["unknown columns"] = good.assign(symbol="BTC_USDT")
    out["lack columns"] = good.drop(columns=["trade_count"])
    df = pd.concat([good, good.iloc[[2]].assign(volume_base=9.0)])
    out["two different rows"] = df
    df = good.copy()
    df.loc[3, "volume_quote"] = -1.0
    out["negative volume"] = df
    secs = good.open_time.astype("int64") // 1000 // 1000  # epoch seconds, not ms
    grid = secs - secs % 300
    out["outside 2000..2100"] = good.assign(open_time=grid, close_time=grid + M5.ms - 1)
    out["fractional trade_count"] = good.assign(trade_count=good.trade_count + 0.5)
    return out


@pytest.mark.parametrize("case", list(_bad_frames()))
def test_invalid_frames_raise_before_any_write(store: CandleStore, case: str) -> None:
    frame = _bad_frames()[case]
    with pytest.raises(ValueError, match=case):
        store.append(SYM, M5, frame)
    assert not store.root.exists() or files_under(store.root) == set()
    assert store.load(SYM, M5).empty


@pytest.mark.parametrize("symbol", ["../x", "BTC/USDT", "", "btc_usdt/../../etc", "BTC_USDT\0"])
def test_bad_symbol_raises_before_any_write(store: CandleStore, symbol: str) -> None:
    page = synthetic("2024-03-01", 3)
    with pytest.raises(ValueError, match="invalid symbol"):
        store.append(symbol, M5, page)
    for call in (store.load, store.last_open_time, store.gaps, store.fingerprint):
        with pytest.raises(ValueError, match="invalid symbol"):
            call(symbol, M5)
    with pytest.raises(ValueError, match="invalid symbol"), store.lock(symbol, M5):
        pass
    assert not store.root.exists()


@pytest.mark.parametrize("interval", ["MINUTE_7", "../MINUTE_5", "MONTH_1"])
def test_bad_interval_raises_before_any_write(store: CandleStore, interval: str) -> None:
    with pytest.raises(ValueError, match="interval"):
        store.append(SYM, interval, synthetic("2024-03-01", 3))
    with pytest.raises(ValueError, match="interval"):
        store.load(SYM, interval)
    assert not store.root.exists()


# --- empty store ---------------------------------------------------------------------------------


def test_empty_store_is_typed_and_reads_create_nothing(store: CandleStore) -> None:
    loaded = store.load(SYM, M5, start="2020-01-01")
    assert loaded.empty and list(loaded.columns) == list(CANDLE_COLUMNS)
    assert {c: str(t) for c, t in loaded.dtypes.items()} == CANDLE_DTYPES
    assert store.last_open_time(SYM, M5) is None
    gaps = store.gaps(SYM, M5)
    assert gaps.empty and list(gaps.columns) == ["start", "end", "missing"]
    assert str(gaps["start"].dtype) == "datetime64[ms, UTC]" and gaps["missing"].dtype == "int64"
    assert store.fingerprint(SYM, M5) == store.fingerprint(SYM, M5)
    assert store.fingerprint(SYM, M5) != store.fingerprint("ETH_USDT", M5)
    r = store.append(SYM, M5, loaded)
    assert (r.added, r.months_written) == (0, [])
    assert not store.root.exists()


# --- gaps ----------------------------------------------------------------------------------------


def test_gaps_exact_on_crafted_holes(store: CandleStore) -> None:
    full = synthetic("2024-01-31 23:00", 100)
    drop = [3, 10, 11, 12, 50, 51]  # holes of 1, 3 and 2 candles; 12 -> 13 crosses into Feb
    store.append(SYM, M5, full.drop(index=drop + [0, 99]))  # first/last missing: outside range
    gaps = store.gaps(SYM, M5)
    t = full.open_time
    expected = pd.DataFrame(
        {
            "start": [t[3], t[10], t[50]],
            "end": [t[3], t[12], t[51]],
            "missing": np.array([1, 3, 2], dtype="int64"),
        }
    )
    pd.testing.assert_frame_equal(gaps, expected)
    store.append(SYM, M5, full.iloc[[10, 11, 12]])
    assert store.gaps(SYM, M5)["missing"].tolist() == [1, 2]


def test_known_gaps_are_the_confirmed_holes_the_store_still_has(store: CandleStore) -> None:
    full = synthetic("2024-01-31 23:00", 100)
    t = full["open_time"].astype("int64").to_numpy()  # ms
    store.append(SYM, M5, full.drop(index=[3, 10, 11, 12, 50, 51]))
    assert store.first_open_time(SYM, M5) == full.open_time[0]
    assert store.known_gaps(SYM, M5) == []
    # confirmed: the 10..12 hole (as two adjacent runs) and part of the 50..51 hole only
    holes, known = store.record_known_gaps(
        SYM, M5, [(t[10], t[11]), (t[12], t[12]), (t[50], t[50])], checked_ms=123
    )
    assert len(holes) == 3
    assert [(k.start_ms, k.end_ms, k.missing, k.checked_ms) for k in known] == [
        (t[10], t[12], 3, 123)
    ]
    assert store.known_gaps(SYM, M5) == known  # recorded beside the partitions
    # a later run that confirms nothing keeps it; refilling part of it shrinks it
    store.append(SYM, M5, full.iloc[[12]])
    _, known = store.record_known_gaps(SYM, M5, [], checked_ms=456)
    assert [(k.start_ms, k.end_ms, k.checked_ms) for k in known] == [(t[10], t[11], 123)]
    store.append(SYM, M5, full.iloc[[10, 11]])
    assert store.record_known_gaps(SYM, M5, [], checked_ms=789)[1] == []
    assert store.known_gaps(SYM, M5) == []


def test_an_unreadable_known_gaps_record_is_a_corrupt_store(store: CandleStore) -> None:
    full = synthetic("2024-01-31 23:00", 10)
    store.append(SYM, M5, full)
    (store.series_dir(SYM, M5) / "known-gaps.json").write_text("{not json")
    with pytest.raises(CorruptStoreError, match="known-gaps"):
        store.known_gaps(SYM, M5)


@pytest.mark.slow
def test_gaps_exact_on_real_bitfinex_1m(store: CandleStore) -> None:
    src = load_recorded(shared_file(BITFINEX_1M_2015))
    r = store.append(SYM, Interval.MINUTE_1, src)
    assert r.added == len(src) and len(r.months_written) == 12
    gaps = store.gaps(SYM, Interval.MINUTE_1)
    # independent: every minute of the stored span that is not a stored minute, grouped in runs
    span = pd.date_range(src.open_time.iloc[0], src.open_time.iloc[-1], freq="1min", unit="ms")
    missing = span.difference(pd.DatetimeIndex(src.open_time))
    run_id = (missing.to_series().diff() != pd.Timedelta(minutes=1)).cumsum().to_numpy()
    runs = pd.Series(missing).groupby(run_id).agg(["first", "last", "size"])
    assert len(gaps) == len(runs) > 100
    assert gaps["start"].tolist() == runs["first"].tolist()
    assert gaps["end"].tolist() == runs["last"].tolist()
    assert gaps["missing"].tolist() == runs["size"].tolist()
    assert gaps["missing"].sum() == len(span) - len(src)
    longest = gaps.loc[gaps["missing"].idxmax()]
    assert longest["start"].month == 5  # the known whole-week hole of May 2015


# --- fingerprint ---------------------------------------------------------------------------------


def test_fingerprint_changes_with_content_and_is_stable_otherwise(store: CandleStore) -> None:
    src = load_recorded(shared_file(POLONIEX_5M))
    store.append(SYM, M5, src.iloc[:3000])
    fp1 = store.fingerprint(SYM, M5)
    assert CandleStore(store.root).fingerprint(SYM, M5) == fp1  # fresh instance, same files
    store.load(SYM, M5)
    store.append(SYM, M5, src.iloc[2500:3000])  # nothing new
    assert store.fingerprint(SYM, M5) == fp1
    store.append(SYM, M5, src.iloc[3000:3001])
    fp2 = store.fingerprint(SYM, M5)
    assert fp2 != fp1
    # same row count and same min/max, one value changed: still a different fingerprint
    july = store.partitions(SYM, M5)[0]
    table = pq.read_table(july)
    vol = table.column("volume_base").to_numpy().copy()
    vol[100] = vol[100] * 1.5 + 1e-3
    i = table.schema.get_field_index("volume_base")
    pq.write_table(table.set_column(i, "volume_base", pa.array(vol)), july, compression="zstd")
    assert store.fingerprint(SYM, M5) != fp2


# --- crash safety --------------------------------------------------------------------------------


def test_failure_inside_second_month_write_keeps_first_month(
    store: CandleStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = load_recorded(shared_file(POLONIEX_5M))
    aug_start = int(np.searchsorted(src.open_time, pd.Timestamp("2017-08-01", tz="UTC")))
    store.append(SYM, M5, src.iloc[:1000])
    real_write = parquet_mod.write_table
    calls = []

    def write_then_die(table: pa.Table, path: Path) -> None:
        calls.append(path)
        if len(calls) == 2:  # the August file: leave half a file behind, then fail
            real_write(table, path)
            data = path.read_bytes()
            path.write_bytes(data[: len(data) // 2])
            raise OSError("disk died during the August write")
        real_write(table, path)

    monkeypatch.setattr(parquet_mod, "write_table", write_then_die)
    with pytest.raises(OSError, match="disk died"):
        store.append(SYM, M5, src.iloc[900 : aug_start + 200])
    monkeypatch.undo()
    loaded = store.load(SYM, M5)  # July committed, August never appeared
    pd.testing.assert_frame_equal(loaded, src.iloc[:aug_start].reset_index(drop=True))
    assert store.last_open_time(SYM, M5) == src.open_time.iloc[aug_start - 1]
    assert not [p for p in store.root.rglob("*.tmp")]
    r = store.append(SYM, M5, src.iloc[aug_start - 10 : aug_start + 200])  # the re-run resumes
    assert (r.added, r.months_written) == (200, ["2017-08"])


def test_stale_temp_files_are_never_read_and_cleaned_on_append(store: CandleStore) -> None:
    page = synthetic("2024-03-01", 50)
    store.append(SYM, M5, page.iloc[:30])
    month_dir = store.partitions(SYM, M5)[0].parent
    stale = month_dir / ".part.parquet.k1ll3d.tmp"  # what a kill -9 mid-write leaves
    stale.write_bytes(b"PAR1 half a file")
    assert stale.exists()
    pd.testing.assert_frame_equal(store.load(SYM, M5), page.iloc[:30], check_exact=True)
    fp = store.fingerprint(SYM, M5)
    assert store.last_open_time(SYM, M5) == page.open_time.iloc[29]
    store.append(SYM, M5, page.iloc[30:])
    assert not stale.exists()
    assert store.fingerprint(SYM, M5) != fp
    pd.testing.assert_frame_equal(store.load(SYM, M5), page, check_exact=True)


def test_last_open_time_reads_only_newest_partition(store: CandleStore) -> None:
    src = load_recorded(shared_file(POLONIEX_5M))
    store.append(SYM, M5, src)
    july, aug = store.partitions(SYM, M5)
    july.write_bytes(b"garbage")  # July unreadable: not needed
    assert store.last_open_time(SYM, M5) == src.open_time.iloc[-1]
    aug.write_bytes(b"garbage")  # the newest partition is what it reads
    with pytest.raises(CorruptStoreError, match="unreadable candle partition") as info:
        store.last_open_time(SYM, M5)
    assert info.value.path == str(aug)  # names the file, and how to fetch the series again
    assert "cryptoflow ingest --symbol BTC_USDT --interval MINUTE_5 --start 2017-07-01" in str(
        info.value
    )


_APPENDER = textwrap.dedent(
    """
    import sys
    import pandas as pd
    from storage.candles import CandleStore
    src = pd.read_parquet(sys.argv[2])
    store = CandleStore(sys.argv[1])
    for lo in range(0, len(src), 250):  # pages of 300 overlapping by 50, crossing a month
        store.append("BTC_USDT", "MINUTE_5", src.iloc[lo : lo + 300])
        print(lo, flush=True)
    """
)


@pytest.mark.slow
def test_kill_9_during_appends_leaves_a_loadable_prefix(store: CandleStore, tmp_path: Path) -> None:
    src = load_recorded(shared_file(POLONIEX_5M))
    aug = int(np.searchsorted(src.open_time, pd.Timestamp("2017-08-01", tz="UTC")))
    src = src.iloc[aug - 2000 : aug + 1000].reset_index(drop=True)
    feed = tmp_path / "feed.parquet"
    src.to_parquet(feed)
    for kill_after in (3, 7, 9):
        proc = subprocess.Popen(
            [sys.executable, "-c", _APPENDER, str(store.root), str(feed)],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(kill_after):
            proc.stdout.readline()
        proc.kill()  # SIGKILL, mid-flight
        proc.wait(timeout=30)
        proc.stdout.close()
        loaded = store.load(SYM, M5)
        assert len(loaded) > 0
        pd.testing.assert_frame_equal(loaded, src.iloc[: len(loaded)], check_exact=True)
    r = store.append(SYM, M5, src)  # the re-run completes it exactly, cleaning any temp file
    assert r.added == len(src) - len(loaded)
    pd.testing.assert_frame_equal(store.load(SYM, M5), src, check_exact=True)
    assert not list(store.root.rglob("*.tmp"))


# --- locking -------------------------------------------------------------------------------------

_HOLDER = textwrap.dedent(
    """
    import sys
    from storage.candles import CandleStore
    store = CandleStore(sys.argv[1])
    with store.lock("BTC_USDT", "MINUTE_5"):
        print("locked", flush=True)
        sys.stdin.read()
    """
)


def test_lock_conflict_between_two_processes(store: CandleStore) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(store.root)],
        cwd=REPO_ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(StoreLockedError, match="another ingest of BTC_USDT MINUTE_5"):
            with store.lock(SYM, M5, timeout=0.2):
                pass
        with pytest.raises(StoreLockedError, match="is running"):
            CandleStore(store.root, lock_timeout=0.2).append(SYM, M5, synthetic("2024-03-01", 3))
        assert store.load(SYM, M5).empty
        with store.lock("ETH_USDT", M5, timeout=0.2):  # other series are independent
            pass
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
        holder.stdout.close()
    with store.lock(SYM, M5, timeout=5):  # released when the holder exits
        r = store.append(SYM, M5, synthetic("2024-03-01", 3))  # re-entrant in one thread
    assert r.added == 3


def test_lock_conflict_between_threads_and_reentrance(store: CandleStore) -> None:
    import threading

    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with store.lock(SYM, M5):
            held.set()
            release.wait(10)

    t = threading.Thread(target=hold)
    t.start()
    try:
        assert held.wait(10)
        with pytest.raises(StoreLockedError, match="another ingest of BTC_USDT MINUTE_5"):
            with store.lock(SYM, M5, timeout=0.1):
                pass
    finally:
        release.set()
        t.join(10)
    with store.lock(SYM, M5, timeout=1), store.lock(SYM, M5, timeout=1):
        assert store.append(SYM, M5, synthetic("2024-03-01", 2)).added == 2
    with store.lock(SYM, M5, timeout=1):  # fully released after nesting
        pass


# --- the one epoch-ms parser (storage.schema.to_epoch_ms) -----------------------------------------


def test_to_epoch_ms_reads_ints_timestamps_and_strings_as_utc() -> None:
    from datetime import UTC, datetime

    from storage.errors import BadInputError
    from storage.schema import from_epoch_ms, to_epoch_ms

    ms = 1_500_000_000_000  # 2017-07-14T02:40:00Z
    assert to_epoch_ms(ms) == ms
    assert to_epoch_ms(np.int64(ms)) == ms
    assert to_epoch_ms("2017-07-14T02:40:00Z") == ms
    assert to_epoch_ms("2017-07-14 02:40") == ms  # naive = UTC
    assert to_epoch_ms("2017-07-14T04:40:00+02:00") == ms
    assert to_epoch_ms(datetime(2017, 7, 14, 2, 40, tzinfo=UTC)) == ms
    assert to_epoch_ms(pd.Timestamp("2017-07-14 02:40")) == ms
    assert to_epoch_ms(np.datetime64("2017-07-14T02:40")) == ms
    assert to_epoch_ms(from_epoch_ms(ms)) == ms
    for bad in ["yesterday-ish", True, None, 1.5, "NaT"]:
        with pytest.raises(BadInputError, match="start: not a date/time"):
            to_epoch_ms(bad, "start")
