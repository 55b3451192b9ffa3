"""Ingest under failures: a huge Retry-After is capped, Ctrl-C or SIGTERM stops a wait within
seconds, a still-open row is never stored, retries count per page, a row the store refuses is
retried like an invalid page, and messages say what really happened. Replay on 127.0.0.1, real
store, real Prefect API, the CLI."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time

import pandas as pd
import pytest

from cryptoflow.cli import main as cli_main
from cryptoflow.replay import ReplayServer
from storage.recorded import load_recorded
from storage.schema import to_ms
from tasks.ingest.outcome import IngestError
from tests.support.ingest import assert_store_equals, candle_store, run_ingest, stored
from tests.support.paths import shared_file
from tests.support.realdata import POLONIEX_5M


@pytest.fixture(scope="module")
def legacy() -> pd.DataFrame:
    return load_recorded(shared_file(POLONIEX_5M))


def _first(source: pd.DataFrame) -> int:
    """The first candle's open time (ms): a start there makes page 1 whole."""
    return int(to_ms(source["open_time"])[0])


def _in_thread(fn, limit: float):
    """``fn()`` in a daemon thread: its result, or a failure when it takes over ``limit`` s."""
    box: dict[str, object] = {}

    def target() -> None:
        try:
            box["result"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            box["error"] = exc

    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(limit)
    assert not worker.is_alive(), f"still running after {limit} s"
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["result"]


def test_a_huge_retry_after_fails_the_page_as_retryable_and_the_retry_succeeds(
    prefect_api, data_dir, legacy
):
    source = legacy.iloc[:1500]
    with ReplayServer(source, faults="2:429-long") as srv:
        began = time.monotonic()
        result = _in_thread(
            lambda: run_ingest(srv, data_dir, start="2017-07-14", max_in_flight=1), 90
        )
        log = srv.candle_requests()
    assert time.monotonic() - began < 60
    assert_store_equals(data_dir, source)
    assert result[0]["added"] == 1500
    assert log[1]["fault"] == "429-long" and log[2]["params"] == log[1]["params"]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=lambda s: s.name)
def test_a_signal_during_a_retry_after_wait_stops_within_seconds(
    prefect_api, data_dir, legacy, signum, tmp_path
):
    """`cryptoflow ingest` (its own process, started as a background job is: SIGINT ignored)
    waiting out a 40 s Retry-After stops within seconds of Ctrl-C or SIGTERM, exit 130; the
    page fetched before the wait is committed exactly and the series lock is free.

    A process of its own, as users run it: signalled inside the long-lived test process, the
    flow depended on what hundreds of earlier tests had left in that process (twice in a full
    run the interrupt only surfaced when the wait was over)."""
    from prefect.settings import PREFECT_API_URL

    from storage.errors import EXIT_INTERRUPTED
    from tests.support.servers import VENV_BIN, as_background_job, base_env

    source = legacy.iloc[:1500]
    env = base_env(tmp_path / "home", PREFECT_API_URL=str(PREFECT_API_URL.value()))
    log = tmp_path / "ingest.log"
    with ReplayServer(source, faults="2:429", retry_after=40) as srv, open(log, "wb") as out:
        proc = subprocess.Popen(
            [VENV_BIN / "cryptoflow", "ingest", "--base-url", srv.url, "--data-dir", str(data_dir),
             "--start", pd.Timestamp(_first(source), unit="ms", tz="UTC").isoformat(),
             "--max-in-flight", "1", "--retry-delays", "0.01",
             "--max-requests-per-second", "0"],
            env=env, stdout=out, stderr=subprocess.STDOUT, preexec_fn=as_background_job,
            start_new_session=True,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 300  # bounded by the ingest getting there, not a race
            while not any(e["fault"] == "429" for e in srv.candle_requests()):
                assert proc.poll() is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.05)
            time.sleep(0.5)  # the client is now waiting out the 40 s Retry-After
            sent = time.monotonic()
            proc.send_signal(signum)
            try:
                code = proc.wait(timeout=35)
            except subprocess.TimeoutExpired:
                pytest.fail(f"still waiting 35 s after {signum.name}:\n{log.read_text()}")
            stopped = time.monotonic()
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
        first_page_end = int(srv.candle_requests()[0]["params"]["endTime"])
    text = log.read_text()
    assert code == EXIT_INTERRUPTED, text
    assert stopped - sent < 10, f"stopped {stopped - sent:.1f} s after the signal:\n{text}"
    # the page fetched before the wait is committed, exactly; the series lock is free
    kept = source[to_ms(source["open_time"]) <= first_page_end]
    assert len(kept) == 500
    assert_store_equals(data_dir, kept)
    store = candle_store(data_dir)
    with store.lock("BTC_USDT", "MINUTE_5", timeout=0.5):
        pass


def test_a_row_still_open_by_its_ts_is_never_stored(prefect_api, data_dir, legacy):
    source = legacy.iloc[:300]
    # the server's clock says every candle has closed, yet the last row is still open
    with ReplayServer(source, faults="1:open") as srv:
        first = run_ingest(srv, data_dir, start=_first(source))
        assert_store_equals(data_dir, source.iloc[:299])
        assert first[0]["added"] == 299
        second = run_ingest(srv, data_dir)
    assert_store_equals(data_dir, source)
    assert second[0]["added"] == 1


def test_retries_count_per_page(prefect_api, data_dir, legacy):
    source = legacy.iloc[:3000]
    with ReplayServer(source, faults="2:500,5:500") as srv:
        result = run_ingest(srv, data_dir, start=_first(source), retries=1, max_in_flight=1)
        assert len(srv.candle_requests()) == 7 + 2  # 6 pages, the one at now, 2 retries
    assert_store_equals(data_dir, source)
    assert result[0]["added"] == 3000


def test_a_row_the_store_refuses_is_retried_and_earlier_pages_are_committed(
    prefect_api, data_dir, legacy
):
    source = legacy.iloc[:2500].reset_index(drop=True)
    source.loc[1200, "low"] = 0.0  # page 3: a zero price, which the store refuses
    with ReplayServer(source) as srv:
        state = run_ingest(srv, data_dir, start=_first(source), retries=2, max_in_flight=1,
                           return_state=True)  # fmt: skip
        pages = [e["params"]["startTime"] for e in srv.candle_requests()]
    assert state.is_failed()
    message = str(state.result(raise_on_failure=False))
    assert "price <= 0" in message and "failed after retries" in message
    assert "committed up to 2017-07-17" in message
    assert pages.count(pages[2]) == 3  # the bad page: first try and two retries
    assert_store_equals(data_dir, source.iloc[:1000])


def test_a_failure_that_was_not_retried_does_not_say_so(prefect_api, data_dir, legacy):
    with ReplayServer(legacy.iloc[:600]) as srv:
        with pytest.raises(IngestError) as info:
            run_ingest(srv, data_dir, symbols=["ETH_BTC"], start="2017-07-14", retries=3)
    assert "ETH_BTC MINUTE_5 failed:" in str(info.value)
    assert "after retries" not in str(info.value)


def test_one_failing_symbol_does_not_hide_the_others(prefect_api, data_dir, legacy, capsys):
    with ReplayServer(legacy.iloc[:800]) as srv:
        code = cli_main(
            ["ingest", "--symbol", "BTC_USDT", "--symbol", "ETH_BTC", "--start", "2017-07-14",
             "--base-url", srv.url, "--data-dir", str(data_dir), "--rate-limit", "0",
             "--no-progress"]
        )  # fmt: skip
    captured = capsys.readouterr()
    assert code == 1  # ETH_BTC is unknown to the server: permanent, not a retried remote failure
    assert "BTC_USDT MINUTE_5: 800 candles added" in captured.out
    assert "ETH_BTC MINUTE_5: failed" in captured.out
    assert "ETH_BTC" in captured.err and "symbol" in captured.err
    assert len(stored(data_dir)) == 800


def test_a_start_after_the_server_now_is_refused(prefect_api, data_dir, legacy, capsys):
    with ReplayServer(legacy.iloc[:100]) as srv:
        code = cli_main(
            ["ingest", "--start", "2030-01-01", "--base-url", srv.url, "--data-dir",
             str(data_dir), "--no-progress"]
        )  # fmt: skip
        assert srv.candle_requests() == []
    err = capsys.readouterr().err
    assert code == 2 and "start" in err and "server" in err and "None" not in err
    assert not any(p.is_file() for p in data_dir.rglob("*"))
