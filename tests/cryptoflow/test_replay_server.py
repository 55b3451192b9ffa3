"""The replay server: recorded formats, the v3 API's semantics and shapes, clock, log, faults.

Everything goes over real HTTP on 127.0.0.1; recorded data is the real shared data.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys

import httpx
import pandas as pd
import pytest

from cryptoflow.replay import ReplayServer
from cryptoflow.replay.clock import parse_now
from cryptoflow.replay.faults import Fault, parse_faults
from storage.candles import CandleStore
from storage.errors import BadInputError, CorruptStoreError
from storage.recorded import load_recorded, load_recorded_files
from storage.schema import CANDLE_COLUMNS, to_ms
from tests.support.paths import REPO_ROOT, shared_file
from tests.support.realdata import (
    BITFINEX_1M_2015,
    BITFINEX_5M,
    POLONIEX_5M,
    POLONIEX_30M,
    bitfinex_5m_candles,
    poloniex_5m,
)
from tests.support.servers import replay_fixtures

FIVE_MIN = 300_000
SAMPLES = "poloniex-api-samples"

legacy, server = replay_fixtures(1000, retry_after=0.2, slow_seconds=0.5)


def _get(srv: ReplayServer, path: str, **params) -> httpx.Response:
    return httpx.get(srv.url + path, params=params, timeout=5)


def _candles(srv: ReplayServer, **params) -> httpx.Response:
    params.setdefault("interval", "MINUTE_5")
    return _get(srv, "/markets/BTC_USDT/candles", **params)


# ----------------------------------------------------------------------------- recorded formats


def test_legacy_poloniex_csv_loads_exactly():
    path = shared_file(POLONIEX_5M)
    df = load_recorded(path)
    raw = [line.split(",") for line in path.read_text().splitlines()[1:]]
    assert len(df) == len(raw) == 7673
    assert df.attrs["interval"] == "MINUTE_5"
    assert list(df.columns) == list(CANDLE_COLUMNS)
    for i in (0, 1234, len(raw) - 1):
        date, high, low, open_, close, volume, quote_volume, _ = raw[i]
        row = df.iloc[i]
        assert to_ms(df["open_time"])[i] == int(date) * 1000
        assert (row.open, row.high, row.low, row.close) == tuple(
            float(x) for x in (open_, high, low, close)
        )
        # legacy "volume" is the quote currency (USDT), "quoteVolume" the base (BTC)
        assert row.volume_quote == float(volume) and row.volume_base == float(quote_volume)
        assert to_ms(df["close_time"])[i] == int(date) * 1000 + FIVE_MIN - 1
    pd.testing.assert_frame_equal(df, poloniex_5m())  # and all of it, by the independent oracle


def test_legacy_30m_file_infers_its_interval():
    df = load_recorded(shared_file(POLONIEX_30M))
    assert df.attrs["interval"] == "MINUTE_30" and len(df) == 42010


def test_bitfinex_5m_and_1m_files_load():
    five = load_recorded(shared_file(BITFINEX_5M))
    assert len(five) == 280_652 and five.attrs["interval"] == "MINUTE_5"
    assert five["open_time"].is_monotonic_increasing and five["open_time"].is_unique
    # the independent oracle, volume_quote from the typical price included
    pd.testing.assert_frame_equal(five, bitfinex_5m_candles())
    one = load_recorded(shared_file(BITFINEX_1M_2015))
    assert len(one) == 366_710 and one.attrs["interval"] == "MINUTE_1"
    # Bitfinex order is MTS, OPEN, CLOSE, HIGH, LOW: check the first raw line by hand
    import gzip

    with gzip.open(shared_file(BITFINEX_1M_2015), "rt") as fh:
        mts, o, c, h, lo, v = fh.readline().strip().split(",")
    first = one.iloc[0]
    assert to_ms(one["open_time"])[0] == int(mts)
    assert (first.open, first.close, first.high, first.low, first.volume_base) == (
        float(o), float(c), float(h), float(lo), float(v),
    )  # fmt: skip
    assert (one["low"] <= one[["open", "close"]].min(axis=1)).all()


def test_parquet_store_folder_round_trips(tmp_path, legacy):
    store = CandleStore(tmp_path / "candles")
    store.append("BTC_USDT", "MINUTE_5", legacy.iloc[:3000])
    for root in (tmp_path, tmp_path / "candles", store.series_dir("BTC_USDT", "MINUTE_5")):
        back = load_recorded(root)
        pd.testing.assert_frame_equal(back, legacy.iloc[:3000].reset_index(drop=True))
        assert back.attrs["interval"] == "MINUTE_5"


def test_several_files_load_as_one_series(tmp_path, legacy):
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    lines = shared_file(POLONIEX_5M).read_text().splitlines()
    first.write_text("\n".join(lines[:3001]) + "\n")  # header + candles 0..2999
    second.write_text("\n".join([lines[0], *lines[2001:]]) + "\n")  # 2000.. overlapping
    both = load_recorded_files([second, first])
    pd.testing.assert_frame_equal(both, legacy)
    assert both.attrs["interval"] == "MINUTE_5"
    hourly = shared_file("poloniex-USDT_BTC-2h-2015-06-30--2021-08-14.csv")
    with pytest.raises(BadInputError, match="different intervals"):
        load_recorded_files([first, hourly])


def test_unreadable_store_partition_is_a_corrupt_store(tmp_path, legacy):
    store = CandleStore(tmp_path / "candles")
    store.append("BTC_USDT", "MINUTE_5", legacy.iloc[:100])
    part = store.partitions("BTC_USDT", "MINUTE_5")[0]
    part.write_bytes(b"not parquet")
    with pytest.raises(CorruptStoreError, match="unreadable candle partition") as info:
        load_recorded(tmp_path)
    assert info.value.path == str(part)


def test_unknown_format_is_rejected_clearly():
    with pytest.raises(BadInputError, match="unrecognised format"):
        load_recorded(shared_file("poloniex-USDT_BTC-5m-2022-09-01-legacy-ms.csv"))
    with pytest.raises(BadInputError, match="does not exist"):
        load_recorded("/nonexistent/file.csv")


# ----------------------------------------------------------------------------- shapes and types


def _sample_rows() -> list[list]:
    rows = []
    for path in sorted(shared_file(SAMPLES).glob("v3-markets-*.json")):
        rows.extend(json.loads(path.read_text()))
    return rows


def test_replies_have_the_shape_and_types_of_the_real_samples(server):
    samples = _sample_rows()
    assert samples, "no v3 samples"
    sample_types = {tuple(type(v).__name__ for v in row) for row in samples}
    assert len(sample_types) == 1
    reply = _candles(server, limit=50)
    assert reply.status_code == 200 and reply.headers["content-type"] == "application/json"
    rows = reply.json()
    assert isinstance(rows, list) and len(rows) == 50
    for row in rows:
        assert tuple(type(v).__name__ for v in row) in sample_types
        assert row[11] == "MINUTE_5" and row[13] == row[12] + FIVE_MIN - 1
        float(row[0]), float(row[10])  # numbers as strings that parse
    assert _get(server, "/timestamp").json() == {"serverTime": server.now_ms}


def test_served_values_equal_the_recording_exactly(server, legacy):
    times = to_ms(legacy["open_time"])
    rows = _candles(server, startTime=times[0], endTime=times[499], limit=500).json()
    src = poloniex_5m().iloc[:500]  # the independent oracle, not the reader that fed the server
    assert [r[12] for r in rows] == to_ms(src["open_time"]).tolist()
    assert [float(r[2]) for r in rows] == src["open"].tolist()
    assert [float(r[1]) for r in rows] == src["high"].tolist()
    assert [float(r[0]) for r in rows] == src["low"].tolist()
    assert [float(r[3]) for r in rows] == src["close"].tolist()
    assert [float(r[5]) for r in rows] == src["volume_base"].tolist()
    assert [float(r[4]) for r in rows] == src["volume_quote"].tolist()


# ----------------------------------------------------------------------------- API semantics


def test_limit_default_max_and_error(server):
    assert len(_candles(server).json()) == 100
    assert len(_candles(server, limit=500).json()) == 500
    for bad in (501, 0, "x"):
        reply = _candles(server, limit=bad)
        assert reply.status_code == 400 and reply.json()["code"] == 24104


def test_answer_is_anchored_to_end_time(server, legacy):
    times = to_ms(legacy["open_time"][:1000])
    # only startTime: the LATEST candles up to now, not the ones after startTime
    latest = _candles(server, startTime=times[0], limit=10).json()
    assert [r[12] for r in latest] == times[-10:].tolist()
    # both: the last `limit` candles not after endTime
    both = _candles(server, startTime=times[100], endTime=times[199], limit=20).json()
    assert [r[12] for r in both] == times[180:200].tolist()
    # a window that fits: exactly the window
    window = _candles(server, startTime=times[100], endTime=times[109], limit=500).json()
    assert [r[12] for r in window] == times[100:110].tolist()


def test_error_replies(server):
    for path, params, code in [
        ("/markets/ETH_BTC/candles", {"interval": "MINUTE_5"}, 24101),
        ("/markets/BTC_USDT/candles", {"interval": "MINUTE_7"}, 24102),
        ("/markets/BTC_USDT/candles", {"interval": "HOUR_1"}, 24102),
        ("/markets/BTC_USDT/candles", {"interval": "MINUTE_5", "startTime": "x"}, 24105),
        ("/markets/BTC_USDT/candles", {"interval": "MINUTE_5", "endTime": "y"}, 24103),
    ]:
        reply = _get(server, path, **params)
        assert reply.status_code != 200
        body = reply.json()
        assert set(body) == {"code", "message"} and body["code"] == code


def test_clock_nothing_after_now_and_partial_open_candle(server, legacy):
    times = to_ms(legacy["open_time"][:1000])
    server.set_now(int(times[500]) + 2 * 60_000)  # 2 of 5 minutes into candle 500
    rows = _candles(server, limit=5).json()
    assert [r[12] for r in rows] == times[496:501].tolist()
    partial, final = rows[-1], legacy.iloc[500]
    assert partial[9] == server.now_ms  # ts: last update = now
    low, high, open_, close = (float(partial[i]) for i in (0, 1, 2, 3))
    assert open_ == final.open
    assert low <= min(open_, close) and max(open_, close) <= high
    assert float(partial[5]) == pytest.approx(final.volume_base * 0.4)
    if final.high != final.open:
        assert high != final.high  # partial, not the final candle
    # the closed candles before it are served whole
    assert float(rows[-2][1]) == legacy.iloc[499].high
    # exactly at the close of candle 500 it is still open (closed only once close_time < now)
    server.set_now(int(times[500]) + FIVE_MIN - 1)
    assert _candles(server, limit=1).json()[0][9] == server.now_ms
    server.set_now(int(times[500]) + FIVE_MIN)
    assert _candles(server, limit=1).json()[0][12] == times[501]  # next candle opens, partial
    assert _get(server, "/timestamp").json()["serverTime"] == int(times[500]) + FIVE_MIN


def test_request_log_and_http_control(server, legacy):
    t0 = int(to_ms(legacy["open_time"])[0])
    assert httpx.post(server.url + f"/_replay/clock?now={t0 + 10 * FIVE_MIN}").status_code == 200
    assert _get(server, "/timestamp").json()["serverTime"] == t0 + 10 * FIVE_MIN
    assert httpx.post(server.url + "/_replay/faults?spec=1:500").status_code == 200
    assert _candles(server, limit=3).status_code == 500
    assert _candles(server, limit=3).status_code == 200
    log = httpx.get(server.url + "/_replay/requests").json()
    candle_log = [e for e in log if e["n"] is not None]
    assert [e["status"] for e in candle_log] == [500, 200]
    assert candle_log[0]["fault"] == "500" and candle_log[1]["params"]["limit"] == "3"
    assert candle_log[1]["rows"] == 3
    assert httpx.post(server.url + "/_replay/faults?spec=1:nope").status_code == 400


# ----------------------------------------------------------------------------- faults


def test_fault_spec_parsing():
    assert parse_faults("2:429, 4-6:reset") == {
        2: Fault.RATE_LIMIT, 4: Fault.RESET, 5: Fault.RESET, 6: Fault.RESET,
    }  # fmt: skip
    assert parse_faults("") == {}
    for bad in ("0:500", "3", "2:explode", "5-3:500", "x:500"):
        with pytest.raises(BadInputError, match="bad fault"):
            parse_faults(bad)


def test_each_fault_kind_on_the_wire(server, legacy):
    server.set_faults("1:429,2:500,3:busy,4:truncated,5:malformed,6:slow,7:reset")
    t0 = int(to_ms(legacy["open_time"])[0])
    params = {"startTime": t0, "endTime": t0 + 99 * FIVE_MIN, "limit": 100}

    r = _candles(server, **params)
    assert r.status_code == 429 and float(r.headers["Retry-After"]) == 0.2
    assert _candles(server, **params).status_code == 500
    r = _candles(server, **params)
    assert r.status_code == 400 and r.json()["code"] == 24201
    r = _candles(server, **params)
    assert r.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(r.content)
    rows = _candles(server, **params).json()
    assert sum(float(row[0]) > float(row[1]) for row in rows) == 1  # one row: low above high
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(server.url + "/markets/BTC_USDT/candles", params=params, timeout=0.2)
    with pytest.raises(httpx.TransportError):
        _candles(server, **params)
    assert len(_candles(server, **params).json()) == 100  # and then it behaves
    assert [e["fault"] for e in server.candle_requests()][:7] == [
        "429", "500", "busy", "truncated", "malformed", "slow", "reset",
    ]  # fmt: skip


def test_page_faults_empty_short_open_and_a_huge_retry_after(server, legacy):
    t0 = int(to_ms(legacy["open_time"])[0])
    params = {"startTime": t0, "endTime": t0 + 99 * FIVE_MIN, "limit": 100}
    full = _candles(server, **params).json()  # before the plan: numbering starts at the next
    server.set_faults("1:empty,2:short,3:open,4:429-long")

    r = _candles(server, **params)
    assert r.status_code == 200 and r.json() == []
    assert _candles(server, **params).json() == full[:50]
    rows = _candles(server, **params).json()
    assert rows[:-1] == full[:-1] and rows[-1] != full[-1]
    low, high, open_, close, quote, base = rows[-1][:6]
    assert low == high == close == open_ == full[-1][2] and float(quote) == float(base) == 0
    assert rows[-1][12:] == full[-1][12:] and rows[-1][12] < rows[-1][9] < rows[-1][13]
    r = _candles(server, **params)
    assert r.status_code == 429 and float(r.headers["Retry-After"]) >= 3600
    assert _candles(server, **params).json() == full  # and then it behaves
    faults = [e["fault"] for e in server.candle_requests()]
    assert faults[1:5] == ["empty", "short", "open", "429-long"]
    assert [e["rows"] for e in server.candle_requests()][1:4] == [0, 50, 100]


def test_parse_now():
    assert parse_now("1500000000000") == 1_500_000_000_000
    assert parse_now("2017-07-14T02:40:00Z") == 1_500_000_000_000
    assert parse_now("2017-07-14 02:40") == 1_500_000_000_000
    assert parse_now(None) is None
    with pytest.raises(BadInputError, match="--now"):
        parse_now("yesterday-ish")


@pytest.mark.parametrize(
    "text", ["-5", "0", "1500000000", "1999-12-31T23:59:59Z", "99999999999999999", "3000-01-01"]
)
def test_parse_now_refuses_times_outside_2000_to_2262(text):
    with pytest.raises(BadInputError, match="--now .*2000-01-01"):
        parse_now(text)


def test_clock_control_refuses_a_time_before_2000(server):
    before = server.now_ms
    reply = httpx.post(server.url + "/_replay/clock", params={"now": "-5"})
    assert reply.status_code == 400 and "2000-01-01" in reply.json()["message"]
    assert server.now_ms == before


def test_several_markets(legacy):
    other = legacy.iloc[:10].copy()
    other["close"] = other["open"]
    with ReplayServer(legacy.iloc[:20], markets={"ETH_BTC": other}) as srv:
        a = httpx.get(srv.url + "/markets/BTC_USDT/candles?interval=MINUTE_5").json()
        b = httpx.get(srv.url + "/markets/ETH_BTC/candles?interval=MINUTE_5").json()
    assert len(a) == 20 and len(b) == 10
    assert [r[3] for r in b] == [r[2] for r in b]


# ----------------------------------------------------------------------------- the subcommand


def test_replay_subcommand_serves_until_interrupted(tmp_path):
    path = shared_file(POLONIEX_5M)
    proc = subprocess.Popen(
        [sys.executable, "-m", "cryptoflow.cli", "replay", "--data", str(path),
         "--now", "2017-08-01", "--faults", "1:busy"],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        line = proc.stdout.readline()
        assert line.startswith("replay: http://127.0.0.1:"), line
        url = line.split()[1]
        assert httpx.get(url + "/timestamp").json() == {"serverTime": 1_501_545_600_000}
        assert httpx.get(url + "/markets/BTC_USDT/candles?interval=MINUTE_5").status_code == 400
        rows = httpx.get(url + "/markets/BTC_USDT/candles?interval=MINUTE_5&limit=3").json()
        assert rows[-1][12] == 1_501_545_600_000  # the candle opening at "now", partial
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _replay_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cryptoflow.cli", "replay", "--data",
         str(shared_file(POLONIEX_5M)), *args],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_replay_subcommand_on_a_busy_port_is_one_line_exit_2():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = _replay_cli("--port", str(port))
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and f"127.0.0.1:{port}" in lines[0] and "in use" in lines[0], lines


@pytest.mark.parametrize(
    ("args", "name"),
    [(["--now", "-5"], "--now"), (["--now", "0"], "--now"), (["--port", "70000"], "--port"),
     (["--port", "-1"], "--port"), (["--slow-seconds", "-1"], "--slow-seconds"),
     (["--retry-after", "nan"], "--retry-after")],
)
def test_replay_subcommand_refuses_bad_options_exit_2(args, name):
    done = _replay_cli(*args)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and name in done.stderr.strip().splitlines()[-1]
    assert not done.stdout  # refused before serving


def test_replay_subcommand_rejects_bad_input(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    done = subprocess.run(
        [sys.executable, "-m", "cryptoflow.cli", "replay", "--data", str(bad)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2 and "unrecognised format" in done.stderr
