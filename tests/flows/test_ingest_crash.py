"""Crash safety: ``kill -9`` a real ``cryptoflow ingest`` process at several points of a backfill.

After every kill the store loads, holds an exact prefix of the source (no duplicate, no partial
or open candle) and the next run resumes; the last run completes the store exactly.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from cryptoflow.replay import ReplayServer
from storage.candles import CandleStore
from storage.layout import DataLayout
from storage.recorded import load_recorded
from tests.support.paths import REPO_ROOT, shared_file

LEGACY_5M = "poloniex-USDT_BTC-5m-2017-07-14--2017-08-09.csv"


def _ingest_cmd(url: str, data_dir) -> list[str]:
    return [
        sys.executable, "-m", "cryptoflow.cli", "ingest", "--base-url", url,
        "--data-dir", str(data_dir), "--start", "2017-07-14", "--rate-limit", "6",
        "--no-progress",
    ]  # fmt: skip


def _env() -> dict[str, str]:
    from prefect.settings import PREFECT_API_URL

    return os.environ | {"PREFECT_API_URL": str(PREFECT_API_URL.value())}


def _kill_when(proc: subprocess.Popen, ready, delay: float = 0.0) -> None:
    """SIGKILL ``proc`` (and its group) ``delay`` s after ``ready()`` first holds."""
    deadline = time.monotonic() + 120
    while not ready():
        assert proc.poll() is None, "ingest finished before it could be killed"
        assert time.monotonic() < deadline, "ingest made no progress"
        time.sleep(0.01)
    time.sleep(delay)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


@pytest.mark.slow
def test_kill_9_at_several_points_never_corrupts_the_store(prefect_api, data_dir):
    source = load_recorded(shared_file(LEGACY_5M))
    store = CandleStore(DataLayout.at(data_dir).candles)
    sizes = []
    july = int((source["open_time"] < "2017-08-01").sum())

    def stored_rows() -> int:
        return len(store.load("BTC_USDT", "MINUTE_5"))

    with ReplayServer(source) as srv:

        def after(n: int):
            target = len(srv.candle_requests()) + n
            return lambda: len(srv.candle_requests()) >= target

        # July is one commit batch of 11+ pages (a page with a hole is asked twice), August one
        # of 6+: kill mid-July (nothing committed yet), as soon as July's commit is seen,
        # mid-August, then while August's last pages are fetched and committed (either side of
        # the commit is fine, a torn one is not).
        points = (
            lambda: (after(5), 0.0),
            lambda: (lambda: stored_rows() >= july, 0.0),
            lambda: (after(2), 0.0),
            lambda: (after(6), 0.05),
        )
        for point in points:
            ready, delay = point()
            proc = subprocess.Popen(
                _ingest_cmd(srv.url, data_dir), cwd=REPO_ROOT, env=_env(),
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
            try:
                _kill_when(proc, ready, delay)
            finally:
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
            stored = store.load("BTC_USDT", "MINUTE_5")  # always loads
            assert stored["open_time"].is_unique and stored["open_time"].is_monotonic_increasing
            pd.testing.assert_frame_equal(stored, source.iloc[: len(stored)].reset_index(drop=True))
            sizes.append(len(stored))
        done = subprocess.run(
            _ingest_cmd(srv.url, data_dir), cwd=REPO_ROOT, env=_env(), capture_output=True,
            text=True, timeout=300,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert sizes[0] == 0 and sizes[1] == july and sizes[2] == july
    assert sizes[3] in (july, len(source))
    pd.testing.assert_frame_equal(store.load("BTC_USDT", "MINUTE_5"), source)
    assert not list(store.series_dir("BTC_USDT", "MINUTE_5").rglob("*.tmp"))
