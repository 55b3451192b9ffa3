"""The ingest flow end to end: replay server over real data on 127.0.0.1, real Parquet store,
real Prefect API. Exactness, resumption, every fault kind, permanent errors, exhausted retries,
gaps, artifact and event, bad input, the CLI."""

from __future__ import annotations

import json
import socket
import threading
import time

import numpy as np
import pandas as pd
import pytest
from prefect.exceptions import ParameterTypeError

from cryptoflow.cli import main as cli_main
from cryptoflow.replay import ReplayServer
from flows.ingest import ingest
from storage.candles import CandleStore
from storage.layout import DataLayout
from storage.recorded import load_recorded
from storage.schema import to_ms
from tasks.ingest.outcome import IngestError
from tasks.ingest.publish import EVENT_APPENDED
from tests.support.paths import shared_file

LEGACY_5M = "poloniex-USDT_BTC-5m-2017-07-14--2017-08-09.csv"
FIVE_MIN = 300_000
FAST = {"retry_delays": [0.01], "max_requests_per_second": 0, "progress": False}


@pytest.fixture(scope="module")
def legacy() -> pd.DataFrame:
    return load_recorded(shared_file(LEGACY_5M))


def _store(data_dir) -> CandleStore:
    return CandleStore(DataLayout.at(data_dir).candles)


def _stored(data_dir, symbol="BTC_USDT", interval="MINUTE_5") -> pd.DataFrame:
    return _store(data_dir).load(symbol, interval)


def _run(srv: ReplayServer, data_dir, **kw):
    return ingest(base_url=srv.url, data_dir=str(data_dir), **(FAST | kw))


def _files(data_dir) -> list:
    return sorted(p for p in data_dir.rglob("*") if p.is_file())


def _assert_exact_prefix(stored: pd.DataFrame, source: pd.DataFrame) -> None:
    """Stored rows are exactly the first len(stored) source rows: no dup, no partial candle."""
    assert stored["open_time"].is_unique and stored["open_time"].is_monotonic_increasing
    pd.testing.assert_frame_equal(stored, source.iloc[: len(stored)].reset_index(drop=True))


def test_exactness_with_the_clock_moving(prefect_api, data_dir, legacy):
    times = to_ms(legacy["open_time"])
    mid = int(times[4000]) + 2 * 60_000  # candle 4000 is open, 2 minutes in
    with ReplayServer(legacy, now_ms=mid) as srv:
        first = _run(srv, data_dir, start="2017-07-14")
        stored = _stored(data_dir)
        pd.testing.assert_frame_equal(stored, legacy.iloc[:4000].reset_index(drop=True))
        assert first[0]["added"] == 4000
        # the open candle was served (partial) but not stored
        assert any(e["params"]["endTime"] == str(mid) for e in srv.candle_requests())
        n_first = len(srv.candle_requests())

        end = int(times[-1]) + FIVE_MIN
        srv.set_now(end)
        second = _run(srv, data_dir)
        stored = _stored(data_dir)
        pd.testing.assert_frame_equal(stored, legacy.reset_index(drop=True))
        assert stored["open_time"].is_unique
        assert (to_ms(stored["close_time"]) < end).all()
        assert second[0]["added"] == len(legacy) - 4000
        later = srv.candle_requests()[n_first:]
        starts = [int(e["params"]["startTime"]) for e in later]
        assert starts[0] == int(times[3999]) + FIVE_MIN  # right after the stored end
        assert min(starts) > int(times[3999])  # nothing already stored was asked again
        assert all(e["params"]["endTime"] for e in later)

        # a third run at the same clock asks only for the candle opening now, and adds nothing
        third = _run(srv, data_dir)
        last = srv.candle_requests()[n_first + len(later) :]
        assert third[0]["added"] == 0 and [e["params"]["startTime"] for e in last] == [str(end)]


@pytest.mark.parametrize("fault", ["429", "500", "busy", "reset", "slow", "truncated", "malformed"])
def test_each_fault_during_a_backfill_is_retried_and_the_store_is_exact(
    prefect_api, data_dir, legacy, fault
):
    source = legacy.iloc[:1500]
    with ReplayServer(source, faults=f"2:{fault}", retry_after=0.2, slow_seconds=1.5) as srv:
        result = _run(srv, data_dir, start="2017-07-14", timeout=0.5, max_in_flight=1)
        log = srv.candle_requests()
    pd.testing.assert_frame_equal(_stored(data_dir), source.reset_index(drop=True))
    assert result[0]["added"] == 1500
    assert log[1]["fault"] == fault
    assert log[2]["params"] == log[1]["params"]  # the failed page, asked again
    if fault == "429":  # the retry waited for the server's Retry-After (0.2 s), not just 0.01 s
        assert log[2]["time"] - log[1]["time"] >= 0.15


def test_faults_with_pages_in_flight(prefect_api, data_dir, legacy):
    source = legacy.iloc[:3000]
    with ReplayServer(source, faults="2:500,3:reset,5:malformed,8:busy") as srv:
        result = _run(srv, data_dir, start="2017-07-14", max_in_flight=4)
    pd.testing.assert_frame_equal(_stored(data_dir), source.reset_index(drop=True))
    assert result[0]["added"] == 3000


def test_permanent_error_fails_fast_without_retry(prefect_api, data_dir, legacy):
    with ReplayServer(legacy.iloc[:600]) as srv:
        state = ingest(
            symbols=["ETH_BTC"], base_url=srv.url, data_dir=str(data_dir), start="2017-07-14",
            return_state=True, retries=3, max_in_flight=1, **FAST,
        )  # fmt: skip
        requests = srv.candle_requests()
    assert state.is_failed()
    with pytest.raises(IngestError, match="symbol") as info:
        state.result()
    assert "ETH_BTC" in str(info.value)
    assert len(requests) == 1  # asked once, never retried
    assert not _store(data_dir).partitions("ETH_BTC", "MINUTE_5")


def test_retries_exhausted_fails_the_run_and_a_rerun_completes(prefect_api, data_dir, legacy):
    source = legacy.iloc[:2000]
    first = int(to_ms(source["open_time"])[0])  # page 1 whole: not asked again
    with ReplayServer(source, faults="2-100:500") as srv:
        state = _run(srv, data_dir, start=first, retries=2, max_in_flight=1,
                     return_state=True)  # fmt: skip
        assert state.is_failed()
        message = str(state.message) + str(state.result(raise_on_failure=False))
        assert "BTC_USDT MINUTE_5 failed after retries" in message and "re-run" in message
        assert len(srv.candle_requests()) == 1 + 3  # page 2: first try + 2 retries
        # the page fetched before the failure is committed, the store is readable and exact
        stored = _stored(data_dir)
        first_page_end = int(srv.candle_requests()[0]["params"]["endTime"])
        assert len(stored) == (to_ms(source["open_time"]) <= first_page_end).sum() > 0
        _assert_exact_prefix(stored, source)

        srv.set_faults("")
        n_before = len(srv.candle_requests())
        _run(srv, data_dir)
        assert int(srv.candle_requests()[n_before]["params"]["startTime"]) == int(
            to_ms(source["open_time"])[len(stored)]
        )
    pd.testing.assert_frame_equal(_stored(data_dir), source.reset_index(drop=True))


def test_gaps_of_the_bitfinex_minute_data_are_reported_exactly(prefect_api, data_dir):
    minute = load_recorded(shared_file("bitfinex-BTCUSD-1m-2015.csv.gz"))
    window = (minute["open_time"] >= "2015-04-25") & (minute["open_time"] < "2015-06-04")
    source = minute.loc[window].reset_index(drop=True)
    with ReplayServer(source, interval="MINUTE_1") as srv:
        result = _run(srv, data_dir, interval="MINUTE_1", start="2015-04-25")
    store = _store(data_dir)
    pd.testing.assert_frame_equal(store.load("BTC_USDT", "MINUTE_1"), source)
    # independent computation of the holes from the source times
    t = to_ms(source["open_time"])
    step = np.diff(t)
    holes = np.flatnonzero(step > 60_000)
    expected_missing = (step[holes] // 60_000 - 1).tolist()
    gaps = store.gaps("BTC_USDT", "MINUTE_1")
    assert gaps["missing"].tolist() == expected_missing
    assert to_ms(gaps["start"]).tolist() == (t[holes] + 60_000).tolist()
    assert to_ms(gaps["end"]).tolist() == (t[holes + 1] - 60_000).tolist()
    assert max(expected_missing) > 40_000  # the month-long hole of May 2015 is among them
    assert result[0]["gaps"] == len(holes) and result[0]["missing"] == sum(expected_missing)


def test_two_symbols_in_parallel_artifact_and_event(prefect_api, data_dir, legacy):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.events.filters import EventFilter, EventNameFilter, EventOccurredFilter

    other = legacy.iloc[:700].copy()
    other["close"] = other["open"]
    began = pd.Timestamp.now(tz="UTC")
    with ReplayServer(legacy.iloc[:1200], markets={"ETH_BTC": other}) as srv:
        result = _run(srv, data_dir, symbols=["BTC_USDT", "ETH_BTC"], start="2017-07-14")
    assert [(r["symbol"], r["added"]) for r in result] == [("BTC_USDT", 1200), ("ETH_BTC", 700)]
    pd.testing.assert_frame_equal(_stored(data_dir, "ETH_BTC"), other.reset_index(drop=True))

    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["ingest-summary"]))
        )
        latest = max(artifacts, key=lambda a: a.created)
        table = json.loads(latest.data) if isinstance(latest.data, str) else latest.data
        rows = {r["symbol"]: r for r in table}
        assert rows["ETH_BTC"]["candles added"] == 700 and rows["BTC_USDT"]["status"] == "ok"
        assert rows["BTC_USDT"]["last new candle"].startswith("2017-07-18")

        expected = {"cryptoflow.candles.BTC_USDT.MINUTE_5", "cryptoflow.candles.ETH_BTC.MINUTE_5"}
        deadline = time.monotonic() + 30
        events: dict[str, dict] = {}
        while time.monotonic() < deadline and not expected <= events.keys():
            page = client.read_events(
                filter=EventFilter(
                    event=EventNameFilter(name=[EVENT_APPENDED]),
                    occurred=EventOccurredFilter(since=began - pd.Timedelta("5s")),
                ),
                limit=50,
            )
            events = {e.resource.id: e.payload for e in page.events}
            time.sleep(0.5)
    assert expected <= events.keys()
    assert events["cryptoflow.candles.ETH_BTC.MINUTE_5"]["added"] == 700


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"interval": "MINUTE_7"}, "interval"),
        ({"interval": "MONTH_1"}, "interval"),
        ({"symbols": ["../x"]}, "symbols"),
        ({"symbols": ["BTC/USDT"]}, "symbols"),
        ({"symbols": []}, "symbols"),
        ({"start": "2017-08-02", "end": "2017-08-01"}, "start .* is after end"),
        ({"start": "not a date"}, "start"),
        ({"base_url": "ftp://example"}, "base_url"),
    ],
)
def test_bad_input_fails_before_any_request_or_write(prefect_api, data_dir, legacy, kwargs,
                                                     message):  # fmt: skip
    with ReplayServer(legacy.iloc[:100]) as srv:
        params = {"base_url": srv.url, "data_dir": str(data_dir), **FAST, **kwargs}
        with pytest.raises((ValueError, ParameterTypeError), match=message):
            ingest(**params)
        assert srv.requests == []
    assert _files(data_dir) == []


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_base_url_is_a_clear_error_and_writes_nothing(prefect_api, data_dir):
    with pytest.raises(IngestError) as info:
        ingest(base_url=f"http://127.0.0.1:{_dead_port()}", data_dir=str(data_dir), timeout=1,
               **FAST)  # fmt: skip
    text = str(info.value)
    assert "--base-url" in text and "cryptoflow replay" in text
    assert _files(data_dir) == []


def test_cli_ingest(prefect_api, data_dir, legacy, capsys):
    with ReplayServer(legacy.iloc[:800]) as srv:
        code = cli_main(
            ["ingest", "--symbol", "BTC_USDT", "--interval", "MINUTE_5", "--start", "2017-07-14",
             "--base-url", srv.url, "--data-dir", str(data_dir), "--rate-limit", "0",
             "--no-progress"]
        )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0 and "BTC_USDT MINUTE_5: 800 candles added" in out
    assert len(_stored(data_dir)) == 800

    code = cli_main(["ingest", "--symbol", "BTC/USDT", "--data-dir", str(data_dir)])
    assert code == 2 and "invalid symbol" in capsys.readouterr().err

    empty = data_dir / "empty"
    code = cli_main(
        ["ingest", "--base-url", f"http://127.0.0.1:{_dead_port()}", "--data-dir", str(empty),
         "--timeout", "1", "--no-progress"]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 4 and "--base-url" in err and "cryptoflow replay" in err  # remote, retried
    assert not empty.exists()


def test_ingest_takes_the_series_lock(prefect_api, data_dir, legacy):
    store = _store(data_dir)
    held = threading.Event()
    released: list[float] = []

    def hold() -> None:
        with store.lock("BTC_USDT", "MINUTE_5"):
            held.set()
            time.sleep(1.0)
            released.append(time.time())

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait()
    with ReplayServer(legacy.iloc[:600]) as srv:
        result = _run(srv, data_dir, start="2017-07-14")
        first = srv.candle_requests()[0]["time"]
    holder.join()
    assert result[0]["added"] == 600
    assert first >= released[0]  # nothing was fetched while another writer held the series


def test_progress_bar_when_asked(prefect_api, data_dir, legacy, capsys):
    with ReplayServer(legacy.iloc[:1200]) as srv:
        _run(srv, data_dir, start="2017-07-14", progress=True)
    err = capsys.readouterr().err
    assert "BTC_USDT" in err and "1,200 candles" in err
