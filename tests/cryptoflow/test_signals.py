"""SIGINT and SIGTERM end our commands and servers promptly and cleanly, whatever the parent did.

Every child here starts as a non-interactive shell's background job does (SIGINT ignored, the
condition in which the suite once failed), on real processes, real HTTP on 127.0.0.1, and real
files; the temporary Prefect server is a real uvicorn subprocess, looked for with psutil.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time

import httpx
import pytest

from cryptoflow.replay import ReplayServer
from storage.recorded import load_recorded
from tests.support.paths import REPO_ROOT, shared_file
from tests.support.realdata import POLONIEX_5M
from tests.support.servers import (
    VENV_BIN,
    as_background_job,
    base_env,
    cpu_load,
    descendants,
    survivors,
)

PROMPT_S = 5.0  # a signalled server must be gone within this, even on a loaded 2-core machine
SIGNALS = [signal.SIGINT, signal.SIGTERM]


def _kill_group(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


class Burst:
    """Client threads requesting candle pages over keep-alive connections, until the server goes."""

    def __init__(self, url: str, threads: int = 8) -> None:
        self.url = url
        self.served = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def _run(self) -> None:
        params = {"interval": "MINUTE_5", "limit": 500}
        with httpx.Client(base_url=self.url, timeout=10) as client:
            while not self._stop.is_set():
                try:
                    client.get("/markets/BTC_USDT/candles", params=params).raise_for_status()
                except httpx.HTTPError:
                    return  # the server has gone (or is going)
                with self._lock:
                    self.served += 1

    def __enter__(self) -> Burst:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=30)

    def wait_served(self, count: int, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while self.served < count:
            assert time.monotonic() < deadline, f"only {self.served} pages served in {timeout}s"
            time.sleep(0.05)


@pytest.fixture(scope="module")
def busy_cpus():
    """Every CPU busy with a busy-loop process while this module's tests run."""
    with cpu_load() as hogs:
        yield hogs


@pytest.mark.parametrize("attempt", range(3))
@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: s.name)
def test_replay_exits_promptly_on_a_signal_while_serving_a_burst(sig, attempt, tmp_path,
                                                                  busy_cpus):
    err = tmp_path / "replay.err"
    with open(err, "wb") as stderr:
        proc = subprocess.Popen(
            [VENV_BIN / "cryptoflow", "replay", "--data", str(shared_file(POLONIEX_5M))],
            cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=stderr, text=True,
            preexec_fn=as_background_job, start_new_session=True,
        )  # fmt: skip
    try:
        line = proc.stdout.readline()
        assert line.startswith("replay: http://127.0.0.1:"), line + err.read_text()
        with Burst(line.split()[1]) as burst:
            burst.wait_served(40)
            signalled = time.monotonic()
            proc.send_signal(sig)
            try:
                code = proc.wait(timeout=3 * PROMPT_S)
            except subprocess.TimeoutExpired:
                pytest.fail(f"replay still running {3 * PROMPT_S}s after {sig.name}")
            took = time.monotonic() - signalled
        assert code == 0, err.read_text()
        assert took < PROMPT_S, f"{sig.name} answered after {took:.1f}s"
        text = err.read_text()
        assert "replay: stopped" in text and "Traceback" not in text, text
    finally:
        _kill_group(proc)


@pytest.fixture(scope="module")
def legacy():
    return load_recorded(shared_file(POLONIEX_5M))


@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: s.name)
def test_a_signal_leaves_no_temporary_prefect_server(sig, tmp_path, legacy):
    """`cryptoflow ingest` without PREFECT_API_URL (Prefect starts a temporary uvicorn server),
    signalled mid-ingest (the CLI process alone): it exits 130 and nothing it started survives."""
    log = tmp_path / "ingest.log"
    env = base_env(tmp_path / "home")  # no PREFECT_API_URL
    # 16 pages, one at a time, 2 s each: the ingest is still fetching when the signal comes.
    with ReplayServer(legacy, faults="1-100000:slow", slow_seconds=2.0) as replay:
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [VENV_BIN / "cryptoflow", "ingest", "--base-url", replay.url,
                 "--data-dir", str(tmp_path / "data"), "--start", "2017-07-14",
                 "--max-in-flight", "1", "--retries", "0"],
                env=env, stdout=out, stderr=subprocess.STDOUT,
                preexec_fn=as_background_job, start_new_session=True,
            )  # fmt: skip
        started = []
        try:
            deadline = time.monotonic() + 300
            while not replay.candle_requests():  # the flow runs: its API server is up
                assert proc.poll() is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
            started = descendants(proc.pid)
            assert any("uvicorn" in " ".join(p.cmdline()) for p in started), started
            proc.send_signal(sig)
            try:
                code = proc.wait(timeout=90)
            except subprocess.TimeoutExpired:
                pytest.fail(f"ingest still running 90s after {sig.name}:\n{log.read_text()}")
            text = log.read_text()
            assert code == 130, text
            assert "interrupted" in text.splitlines()[-1], text
            deadline = time.monotonic() + 30  # stopped, not merely signalled: reaped at once
            while survivors(started) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert survivors(started) == [], text
        finally:
            for p in survivors(started) + descendants(proc.pid):
                p.kill()
            _kill_group(proc)


def test_orderly_shutdown_turns_sigterm_into_an_interrupt_and_restores_the_handlers():
    from cryptoflow.signals import orderly_shutdown

    before = {s: signal.getsignal(s) for s in SIGNALS}
    with pytest.raises(KeyboardInterrupt, match="SIGTERM"), orderly_shutdown():
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # not reached: the handler raises at the next bytecode
    assert {s: signal.getsignal(s) for s in SIGNALS} == before
