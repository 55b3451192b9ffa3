"""The Poloniex v3 client: contract with the real samples, page validation, typed errors over
real HTTP (the replay server on 127.0.0.1), keep-alive, rate limit, settings."""

from __future__ import annotations

import copy
import json
import threading
import time

import numpy as np
import pandas as pd
import pytest

from storage.errors import BadInputError, TransientError
from storage.schema import CANDLE_DTYPES, to_ms
from storage.settings import PoloniexSettings
from tasks.poloniex.client import PoloniexClient
from tasks.poloniex.errors import (
    FetchInterrupted,
    PageValidationError,
    PermanentError,
    RetryableError,
)
from tasks.poloniex.pages import MAX_LIMIT, parse_candle_arrays, parse_candles
from tasks.poloniex.planning import page_ranges, plan_batches
from tasks.poloniex.ratelimit import TokenBucket
from tests.support.paths import shared_file
from tests.support.servers import replay_fixtures

SAMPLES = "poloniex-api-samples"
FIVE_MIN = 300_000


def _samples() -> dict[str, object]:
    folder = shared_file(SAMPLES)
    return {p.name: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))}


def _interval_of(name: str) -> str:
    return next(iv for iv in ("MINUTE_1", "MINUTE_5", "HOUR_1") if iv in name)


# ----------------------------------------------------------------------------- contract


def test_every_sample_file_is_covered():
    names = set(_samples())
    assert {n for n in names if n.startswith("v3-markets-")}, names
    assert any("futures" in n for n in names) and any(n.startswith("legacy-") for n in names)


@pytest.mark.parametrize(
    "name",
    [
        "v3-markets-BTC_USDT-candles-HOUR_1.json",
        "v3-markets-BTC_USDT-candles-MINUTE_5.json",
        "v3-markets-ETH_BTC-candles-HOUR_1.json",
    ],
)
def test_v3_spot_samples_parse_to_the_exact_values(name):
    rows = _samples()[name]
    df = parse_candles(rows, _interval_of(name))
    assert {c: str(t) for c, t in df.dtypes.items()} == CANDLE_DTYPES
    assert len(df) == len(rows)
    for i, raw in enumerate(rows):
        # field order: low, high, open, close, amount(quote), quantity(base), ..., tradeCount,
        # ts, weightedAverage, interval, startTime, closeTime
        got = df.iloc[i]
        assert got.low == float(raw[0]) and got.high == float(raw[1])
        assert got.open == float(raw[2]) and got.close == float(raw[3])
        assert got.volume_quote == float(raw[4]) and got.volume_base == float(raw[5])
        assert got.trade_count == raw[8]
        assert to_ms(df["open_time"])[i] == raw[12] and to_ms(df["close_time"])[i] == raw[13]


def test_spot_sample_hand_checked_values():
    rows = _samples()["v3-markets-BTC_USDT-candles-MINUTE_5.json"]
    got = parse_candles(rows, "MINUTE_5").iloc[0]
    assert got.open_time == pd.Timestamp("2022-08-05 02:00", tz="UTC")
    assert (got.open, got.high, got.low, got.close) == (22832.57, 22937.42, 22814.01, 22937.42)
    assert (got.volume_base, got.volume_quote, got.trade_count) == (0.171199, 3916.58764051, 33)


def test_futures_envelope_is_rejected_clearly():
    body = _samples()["v3-futures-BTC_USDT_PERP-candles-MINUTE_1.json"]
    with pytest.raises(PageValidationError, match="envelope"):
        parse_candles(body, "MINUTE_1")
    with pytest.raises(PageValidationError, match="9 fields, expected 14"):
        parse_candles(body["data"], "MINUTE_1")


def test_legacy_format_is_rejected_clearly():
    body = _samples()["legacy-returnChartData-BTC_ETH-300-168h.json"]
    assert len(body) == 2016
    with pytest.raises(PageValidationError, match="legacy"):
        parse_candles(body, "MINUTE_5")


# ----------------------------------------------------------------------------- validation


def _good_rows(n: int = 5, start: int = 1_500_000_000_000) -> list[list]:
    rows = []
    for i in range(n):
        t = start + i * FIVE_MIN
        rows.append(
            ["99.5", "101.25", "100", "100.5", "1000.5", "10", "400", "4", 7, t + 10,
             "100.05", "MINUTE_5", t, t + FIVE_MIN - 1]
        )  # fmt: skip
    return rows


def test_good_rows_parse():
    df = parse_candles(_good_rows(), "MINUTE_5", 1_500_000_000_000, 1_500_000_000_000 + 10**7)
    assert len(df) == 5 and df["trade_count"].tolist() == [7] * 5
    assert parse_candles([], "MINUTE_5").empty


def _broken(mutate) -> list[list]:
    rows = copy.deepcopy(_good_rows())
    mutate(rows)
    return rows


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda r: r[2].pop(), "13 fields"),
        (lambda r: r.__setitem__(1, "oops"), "a str"),
        (lambda r: r[1].__setitem__(3, "abc"), "not a number"),
        (lambda r: r[1].__setitem__(3, "NaN"), "not finite"),
        (lambda r: r[1].__setitem__(3, None), "not finite|not a number"),
        (lambda r: r[1].__setitem__(0, "101.5"), "prices out of order"),
        (lambda r: r[1].__setitem__(1, "99"), "prices out of order"),
        (lambda r: r[1].__setitem__(5, "-1"), "negative volume"),
        (lambda r: r[1].__setitem__(8, -1), "negative trade count"),
        (lambda r: r[1].__setitem__(8, "7"), "integer"),
        (lambda r: r[1].__setitem__(8, True), "integer"),
        (lambda r: r[1].__setitem__(12, 1.5e12), "integer"),
        (lambda r: r[1].__setitem__(11, "HOUR_1"), "interval"),
        (lambda r: (r[1].__setitem__(12, r[1][12] + 1), r[1].__setitem__(13, r[1][13] + 1)),
         "grid"),
        (lambda r: r[1].__setitem__(13, r[1][13] + 5), "closeTime"),
        (lambda r: r.__setitem__(2, copy.deepcopy(r[1])), "strictly increasing"),
        (lambda r: r.reverse(), "strictly increasing"),
    ],
)  # fmt: skip
def test_each_broken_page_is_rejected(mutate, message):
    with pytest.raises(PageValidationError, match=message):
        parse_candles(_broken(mutate), "MINUTE_5")


def test_rows_outside_the_request_are_rejected():
    rows = _good_rows()
    t0 = rows[0][12]
    with pytest.raises(PageValidationError, match="before the requested startTime"):
        parse_candles(rows, "MINUTE_5", t0 + 1, t0 + 10 * FIVE_MIN)
    with pytest.raises(PageValidationError, match="after the requested endTime"):
        parse_candles(rows, "MINUTE_5", t0, t0 + 3 * FIVE_MIN)


def test_page_validation_errors_are_retryable():
    assert issubclass(PageValidationError, RetryableError)


# ----------------------------------------------------------------------------- planning


def test_page_ranges_cover_the_range_in_windows_of_at_most_500():
    start, end = 1_500_000_123_456, 1_500_000_000_000 + 1234 * FIVE_MIN
    pages = page_ranges(start, end, "MINUTE_5")
    assert pages[0][0] == 1_500_000_000_000 + FIVE_MIN  # rounded up to the grid
    assert pages[-1][1] == end
    for (a, b), (c, _) in zip(pages, pages[1:], strict=False):
        assert c == b + 1
    assert all((b - a) // FIVE_MIN + 1 <= MAX_LIMIT for a, b in pages)
    with pytest.raises(ValueError):
        page_ranges(0, 1, "MINUTE_5", limit=501)


def test_batches_are_whole_months_and_pages_never_cross_a_month():
    start = int(pd.Timestamp("2017-07-14 02:40", tz="UTC").value // 10**6)
    end = int(pd.Timestamp("2017-10-03 00:00", tz="UTC").value // 10**6)
    batches = plan_batches(start, end, "MINUTE_5")
    pages = [p for b in batches for p in b]
    assert pages[0][0] == start and pages[-1][1] == end
    assert all(b2[0] == b1[1] + 1 for b1, b2 in zip(pages, pages[1:], strict=False))
    for a, b in pages:
        assert pd.Timestamp(a, unit="ms").month == pd.Timestamp(b, unit="ms").month
    months = [{pd.Timestamp(a, unit="ms").month for a, _ in b} for b in batches]
    assert months == [{7}, {8}, {9}, {10}]
    hourly = plan_batches(start, end, "HOUR_1")
    assert len(hourly) == 1  # 3 months of hours < 5000 candles: one commit


# ----------------------------------------------------------------------------- over HTTP


legacy, server = replay_fixtures(2000, retry_after=0.3, slow_seconds=1.0)


def test_fetch_candles_returns_the_exact_recording(server, legacy):
    t = to_ms(legacy["open_time"])
    with PoloniexClient(server.url, max_requests_per_second=0) as client:
        assert client.server_time_ms() == server.now_ms
        df = client.fetch_candles("BTC_USDT", "MINUTE_5", int(t[10]), int(t[509]))
    pd.testing.assert_frame_equal(df, legacy.iloc[10:510].reset_index(drop=True))
    params = server.candle_requests()[0]["params"]
    assert params == {
        "interval": "MINUTE_5", "startTime": str(t[10]), "endTime": str(t[509]), "limit": "500",
    }  # fmt: skip


def test_one_keep_alive_connection(server, legacy):
    t0 = int(to_ms(legacy["open_time"])[0])
    with PoloniexClient(server.url, max_requests_per_second=0) as client:
        for i in range(8):
            client.fetch_candles("BTC_USDT", "MINUTE_5", t0 + i * FIVE_MIN, t0 + (i + 5) * FIVE_MIN)
    ports = {e["client_port"] for e in server.candle_requests()}
    assert len(ports) == 1


@pytest.mark.parametrize(
    "fault, message",
    [
        ("429", "rate limited"),
        ("500", "server error"),
        ("busy", "busy"),
        ("reset", "failed"),
        ("truncated", "truncated JSON"),
        ("malformed", "prices out of order"),
        ("slow", "timed out"),
    ],
)
def test_each_fault_raises_a_retryable_error(server, legacy, fault, message):
    t0 = int(to_ms(legacy["open_time"])[0])
    server.set_faults(f"1:{fault}")
    with PoloniexClient(server.url, timeout=0.4, max_requests_per_second=0) as client:
        with pytest.raises(RetryableError, match=message) as info:
            client.fetch_candles("BTC_USDT", "MINUTE_5", t0, t0 + 99 * FIVE_MIN)
        if fault == "429":
            assert info.value.retry_after == pytest.approx(0.3)
        # the next request succeeds
        assert len(client.fetch_candles("BTC_USDT", "MINUTE_5", t0, t0 + 99 * FIVE_MIN)) == 100


def test_retry_after_holds_the_next_request(server, legacy):
    t0 = int(to_ms(legacy["open_time"])[0])
    server.set_faults("1:429")
    with PoloniexClient(server.url, max_requests_per_second=0) as client:
        with pytest.raises(RetryableError):
            client.fetch_candles("BTC_USDT", "MINUTE_5", t0, t0)
        began = time.monotonic()
        client.fetch_candles("BTC_USDT", "MINUTE_5", t0, t0)
        assert time.monotonic() - began >= 0.25  # Retry-After: 0.3 s


def test_a_retry_after_beyond_the_cap_fails_the_try_and_holds_nothing(server, legacy):
    t0 = int(to_ms(legacy["open_time"])[0])
    server.set_faults("1:429-long")
    with PoloniexClient(server.url, max_requests_per_second=0, max_retry_after=5) as client:
        with pytest.raises(RetryableError, match=r"wait 86400 s \(Retry-After\).*5 s cap") as info:
            client.fetch_candles("BTC_USDT", "MINUTE_5", t0, t0)
        assert info.value.retry_after is None and "/markets/BTC_USDT/candles" in str(info.value)
        began = time.monotonic()
        assert len(client.fetch_candles("BTC_USDT", "MINUTE_5", t0, t0)) == 1
        assert time.monotonic() - began < 2  # the next request was not held for a day


def test_interrupt_ends_a_retry_after_wait_at_once(server, legacy):
    t0 = int(to_ms(legacy["open_time"])[0])
    server.set_faults("1:429")
    server.retry_after = 30
    with PoloniexClient(server.url, max_requests_per_second=0) as client:
        with pytest.raises(RetryableError):
            client.fetch_candles("BTC_USDT", "MINUTE_5", t0, t0)
        threading.Timer(0.3, client.interrupt).start()
        began = time.monotonic()
        with pytest.raises(FetchInterrupted):
            client.fetch_candles("BTC_USDT", "MINUTE_5", t0, t0)  # waits out the Retry-After
        assert time.monotonic() - began < 3
        with pytest.raises(FetchInterrupted):
            client.wait(10)


def test_rows_still_open_by_their_ts_are_dropped_on_request():
    samples = _samples()
    # HOUR_1: ts 1710328420599 < closeTime: the candle was still open when recorded
    hour = samples["v3-markets-BTC_USDT-candles-HOUR_1.json"]
    assert len(parse_candle_arrays(hour, "HOUR_1", drop_open=True)["open_time"]) == 0
    assert len(parse_candle_arrays(hour, "HOUR_1")["open_time"]) == 1
    # ETH_BTC: the first row closed (ts after closeTime), the second still open
    eth = samples["v3-markets-ETH_BTC-candles-HOUR_1.json"]
    kept = parse_candle_arrays(eth, "HOUR_1", drop_open=True)["open_time"]
    assert kept.tolist() == [eth[0][12]]
    # ts = 0 (the documented sample of a closed 2022 candle) says nothing: kept
    five = samples["v3-markets-BTC_USDT-candles-MINUTE_5.json"]
    assert len(parse_candle_arrays(five, "MINUTE_5", drop_open=True)["open_time"]) == 1


def test_the_client_never_returns_a_row_still_open(server, legacy):
    t0 = int(to_ms(legacy["open_time"])[0])
    server.set_faults("1:open")
    with PoloniexClient(server.url, max_requests_per_second=0) as client:
        got = client.fetch_candles("BTC_USDT", "MINUTE_5", t0, t0 + 9 * FIVE_MIN)
    pd.testing.assert_frame_equal(got, legacy.iloc[:9].reset_index(drop=True))


def test_permanent_errors_name_the_parameter(server, legacy):
    t0 = int(to_ms(legacy["open_time"])[0])
    with PoloniexClient(server.url, max_requests_per_second=0) as client:
        with pytest.raises(PermanentError, match="symbol") as info:
            client.fetch_candles("ETH_BTC", "MINUTE_5", t0, t0 + FIVE_MIN)
        assert info.value.code == 24101 and info.value.parameter == "symbol"
        assert isinstance(info.value, BadInputError)  # a symbol that does not exist: bad input
        with pytest.raises(PermanentError, match="interval") as info:
            client.fetch_candles("BTC_USDT", "HOUR_1", t0, t0 + 3_600_000)
        assert info.value.code == 24102
        with pytest.raises(ValueError, match="limit"):
            client.fetch_candles("BTC_USDT", "MINUTE_5", t0, t0, limit=501)
        with pytest.raises(ValueError, match="invalid symbol"):
            client.fetch_candles("../x", "MINUTE_5", t0, t0)
    assert len(server.candle_requests()) == 2  # bad input never reached the server


def test_unreachable_server_is_retryable():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with PoloniexClient(f"http://127.0.0.1:{port}", timeout=1) as client:
        with pytest.raises(RetryableError, match="failed") as info:
            client.server_time_ms()
    assert isinstance(info.value, TransientError)


def test_rate_limit_spaces_requests(server):
    rate = 20.0
    with PoloniexClient(server.url, max_requests_per_second=rate) as client:
        began = time.monotonic()
        for _ in range(30):  # 20 in the first burst, then 10 more at 20/s: >= 0.5 s
            client.server_time_ms()
        assert time.monotonic() - began >= 0.45


def test_token_bucket_off():
    bucket = TokenBucket(0)
    began = time.monotonic()
    for _ in range(10_000):
        bucket.acquire()
    assert time.monotonic() - began < 5


def test_settings_from_environment(monkeypatch):
    monkeypatch.setenv("CRYPTOFLOW_POLONIEX_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("CRYPTOFLOW_MAX_REQUESTS_PER_SECOND", "0")
    monkeypatch.setenv("CRYPTOFLOW_RETRY_DELAYS", "[0.1, 0.2]")
    s = PoloniexSettings()
    assert s.poloniex_url == "http://127.0.0.1:9" and s.max_requests_per_second == 0
    assert s.retry_delays == [0.1, 0.2]
    assert PoloniexClient.from_settings(s).base_url == "http://127.0.0.1:9"
    for name, field in PoloniexSettings.model_fields.items():
        assert field.description, name


def test_defaults():
    monkey = PoloniexSettings.model_fields
    assert monkey["poloniex_url"].default == "https://api.poloniex.com"
    assert monkey["max_requests_per_second"].default == 20.0
    assert monkey["max_retry_after"].default == 60.0
    assert np.isfinite(monkey["timeout"].default)


def test_a_page_the_store_refuses_stops_the_valid_prefix(legacy):
    from storage.errors import BadInputError
    from storage.schema import Interval
    from tasks.poloniex.fetch import valid_prefix

    def page(rows: pd.DataFrame) -> dict[str, np.ndarray]:
        cols = {c: rows[c].to_numpy() for c in rows.columns}
        cols["open_time"], cols["close_time"] = to_ms(rows["open_time"]), to_ms(rows["close_time"])
        return cols

    good, bad, later = (page(legacy.iloc[i : i + 10]) for i in (0, 10, 20))
    bad["low"] = bad["low"].copy()
    bad["low"][3] = 0.0
    kept, why = valid_prefix([good, bad, later], Interval.MINUTE_5)
    assert len(kept) == 1 and kept[0] is good
    assert isinstance(why, BadInputError) and "price <= 0" in str(why)
    assert valid_prefix([good, later], Interval.MINUTE_5) == ([good, later], None)
