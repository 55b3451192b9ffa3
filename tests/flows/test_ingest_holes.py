"""Ingest never accepts a hole it has not confirmed: empty and short pages are asked again, a hole
the server confirms is a known gap (reported, re-checked later), and an earlier ``start``
backfills before the stored first candle. Replay on 127.0.0.1, real store, real Prefect API."""

from __future__ import annotations

import pandas as pd
import pytest

from cryptoflow.replay import ReplayServer
from storage.recorded import load_recorded
from storage.schema import to_ms
from tests.support.ingest import (
    FIVE_MIN,
    assert_store_equals,
    candle_store,
    page_params,
    run_ingest,
)
from tests.support.paths import shared_file
from tests.support.realdata import POLONIEX_5M


@pytest.fixture(scope="module")
def legacy() -> pd.DataFrame:
    return load_recorded(shared_file(POLONIEX_5M))


def _asked_twice_in_a_row(srv: ReplayServer, n: int) -> bool:
    """The page of candle request ``n`` (1-based) was asked again right after."""
    log = srv.candle_requests()
    return log[n - 1]["params"] == log[n]["params"]


@pytest.mark.parametrize("fault, n", [("empty", 1), ("empty", 3), ("short", 2), ("short", 5)])
def test_an_empty_or_short_page_is_asked_again_and_nothing_is_lost(
    prefect_api, data_dir, legacy, fault, n
):
    source = legacy.iloc[:2600]
    first = int(to_ms(source["open_time"])[0])  # so that page 1 is whole
    with ReplayServer(source, faults=f"{n}:{fault}") as srv:
        result = run_ingest(srv, data_dir, start=first, max_in_flight=1)
        assert _asked_twice_in_a_row(srv, n)
    assert_store_equals(data_dir, source)
    assert result[0]["added"] == 2600 and result[0]["gaps"] == 0


def test_empty_pages_with_pages_in_flight(prefect_api, data_dir, legacy):
    source = legacy.iloc[:4000]
    first = int(to_ms(source["open_time"])[0])
    # faults far enough apart that one page's two asks cannot both be hit
    with ReplayServer(source, faults="2:empty,7:short") as srv:
        result = run_ingest(srv, data_dir, start=first, max_in_flight=2)
        assert len(srv.candle_requests()) == 9 + 2  # 8 pages and the one at now; 2 asked again
    assert_store_equals(data_dir, source)
    assert result[0]["added"] == 4000 and result[0]["gaps"] == 0


def _without(source: pd.DataFrame, lo: int, hi: int) -> pd.DataFrame:
    """``source`` with rows ``lo..hi-1`` missing: a hole the server really has."""
    return pd.concat([source.iloc[:lo], source.iloc[hi:]]).reset_index(drop=True)


def test_a_hole_the_server_confirms_is_a_known_gap_and_repair_fills_it(
    prefect_api, data_dir, legacy
):
    full = legacy.iloc[:2000].reset_index(drop=True)
    holed = _without(full, 700, 800)
    times = to_ms(full["open_time"])
    with ReplayServer(holed, now_ms=int(times[-1]) + FIVE_MIN) as srv:
        first = run_ingest(srv, data_dir, start="2017-07-14", max_in_flight=1)
        hole_page = [p for p in page_params(srv) if p[0] <= times[700] <= p[1]]
    assert_store_equals(data_dir, holed)
    assert len(hole_page) == 2  # asked again before it was believed
    out = first[0]
    assert (out["gaps"], out["missing"], out["known_gaps"]) == (1, 100, 1)
    [gap] = out["gap_ranges"]
    assert gap["confirmed"] and gap["missing"] == 100
    assert (to_ms(pd.Series([gap["start"], gap["end"]])) == times[[700, 799]]).all()
    known = candle_store(data_dir).known_gaps("BTC_USDT", "MINUTE_5")
    assert [(k.start_ms, k.end_ms) for k in known] == [(times[700], times[799])]

    # a plain re-run with the hole far before the stored end does not ask for it again
    with ReplayServer(full, now_ms=int(times[-1]) + FIVE_MIN) as srv:
        again = run_ingest(srv, data_dir)
        assert all(p[0] > times[1999] for p in page_params(srv))
        assert again[0]["known_gaps"] == 1
        # repair asks for the hole again; the server has the candles now
        repaired = run_ingest(srv, data_dir, repair=True)
    assert_store_equals(data_dir, full)
    assert repaired[0]["added"] == 100
    assert (repaired[0]["gaps"], repaired[0]["missing"], repaired[0]["known_gaps"]) == (0, 0, 0)
    assert candle_store(data_dir).known_gaps("BTC_USDT", "MINUTE_5") == []


def test_a_recent_hole_is_rechecked_without_asking(prefect_api, data_dir, legacy):
    full = legacy.iloc[:2000].reset_index(drop=True)
    holed = _without(full, 1900, 1950)
    now = int(to_ms(full["open_time"])[-1]) + FIVE_MIN
    with ReplayServer(holed, now_ms=now) as srv:
        first = run_ingest(srv, data_dir, start="2017-07-14")
    assert (first[0]["gaps"], first[0]["missing"], first[0]["known_gaps"]) == (1, 50, 1)
    with ReplayServer(full, now_ms=now) as srv:
        second = run_ingest(srv, data_dir)
    assert_store_equals(data_dir, full)
    assert second[0]["added"] == 50 and second[0]["gaps"] == 0


def test_a_start_before_the_stored_first_candle_backfills_that_range(
    prefect_api, data_dir, legacy
):
    source = legacy.iloc[:2000].reset_index(drop=True)
    times = to_ms(source["open_time"])
    with ReplayServer(source) as srv:
        run_ingest(srv, data_dir, start=int(times[1000]))
        assert_store_equals(data_dir, source.iloc[1000:])
        n = len(srv.candle_requests())
        result = run_ingest(srv, data_dir, start=int(times[0]))
        asked = page_params(srv)[n:]
    assert_store_equals(data_dir, source)
    assert result[0]["added"] == 1000 and result[0]["first_new"].startswith("2017-07-14T02:40")
    # nothing already stored was asked again: the prepended range, then the tail after the end
    assert all(hi < times[1000] or lo > times[1999] for lo, hi in asked)
    assert min(lo for lo, _ in asked) == times[0]
