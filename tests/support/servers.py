"""Real servers started by the tests on 127.0.0.1: a Prefect server, a replay server, workers.

Each is a subprocess in its own process group, stopped (and its children with it) on exit;
:func:`replay_fixtures` makes the fixtures of an in-process replay over the recorded candles;
:func:`as_background_job`, :func:`cpu_load` and :func:`descendants` are what signal tests need.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from tasks.training.runtime import quiet_tensorflow_env

VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float, proc: subprocess.Popen | None = None) -> None:
    """Poll ``url`` until it answers 200, the process dies, or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited with {proc.returncode} before {url} answered")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.3)
    raise TimeoutError(f"{url} did not answer within {timeout}s (last error: {last})")


def stop(proc: subprocess.Popen, timeout: float = 15) -> None:
    """Stop a process started with ``start_new_session=True`` and everything it spawned."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def as_background_job() -> None:
    """``preexec_fn``: start the child as a non-interactive shell's ``cmd &`` does, SIGINT ignored.

    Python then installs no KeyboardInterrupt handler of its own; a suite started in the
    background (``.ci/run &``) hands that disposition to every process it starts.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@contextlib.contextmanager
def cpu_load(processes: int | None = None) -> Iterator[list[subprocess.Popen]]:
    """Busy-loop processes (one per CPU by default) for the duration of the block."""
    count = processes or os.cpu_count() or 2
    hogs = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"], start_new_session=True)
        for _ in range(count)
    ]
    try:
        yield hogs
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait(timeout=10)


def descendants(pid: int) -> list[psutil.Process]:
    """The live descendant processes of ``pid`` (zombies left out)."""
    try:
        kids = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    return [k for k in kids if _alive(k)]


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def survivors(procs: list[psutil.Process]) -> list[psutil.Process]:
    """Those of ``procs`` still alive (zombies are not)."""
    return [p for p in procs if _alive(p)]


def base_env(prefect_home: Path, **extra: str) -> dict[str, str]:
    """Environment for child processes: quiet, offline, own Prefect home."""
    env = quiet_tensorflow_env(dict(os.environ))
    env.update(
        PREFECT_HOME=str(prefect_home),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_LOGGING_LEVEL=env.get("PREFECT_LOGGING_LEVEL", "WARNING"),
        PYTHONUNBUFFERED="1",
    )
    env.pop("PREFECT_API_URL", None)
    env.update(extra)
    return env


@contextlib.contextmanager
def prefect_server(home: Path, log: Path, scheduler_seconds: float | None = None
                   ) -> Iterator[str]:
    """``prefect server start`` on a free loopback port (SQLite in ``home``); yields the API URL.

    The UI served on the same port talks to this API; ``scheduler_seconds`` shortens the
    scheduler's loop so schedule tests need not wait a minute.
    """
    port = free_port()
    # SQLite serialises writers; Prefect's default 10 s lock wait is too short on a loaded 2-core
    # machine (a create-run request then fails with "database is locked" and the UI shows
    # "Something went wrong"). Wait as long as its busy_timeout instead of failing.
    env = base_env(home, PREFECT_UI_API_URL=f"http://127.0.0.1:{port}/api",
                   PREFECT_SERVER_DATABASE_TIMEOUT="60")
    if scheduler_seconds is not None:
        env["PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS"] = str(scheduler_seconds)
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [VENV_BIN / "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    api = f"http://127.0.0.1:{port}/api"
    try:
        wait_http(f"{api}/health", timeout=120, proc=proc)
        yield api
    finally:
        stop(proc)


@contextlib.contextmanager
def background(cmd: list[str], env: dict[str, str], log: Path, cwd: Path | None = None
               ) -> Iterator[subprocess.Popen]:
    """Run ``cmd`` in the background for the duration of the block, output to ``log``."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=cwd,
                                start_new_session=True)
    try:
        yield proc
    finally:
        stop(proc)


@contextlib.contextmanager
def replay_process(data: Path, env: dict[str, str], log: Path, *extra: str) -> Iterator[str]:
    """``cryptoflow replay --data FILE`` on a free port; yields its base URL."""
    port = free_port()
    cmd = [str(VENV_BIN / "cryptoflow"), "replay", "--data", str(data), "--port", str(port), *extra]
    with background(cmd, env, log) as proc:
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/timestamp", timeout=60, proc=proc)
        yield url


def replay_fixtures(rows: int, *, retry_after: float, slow_seconds: float):
    """Two pytest fixtures, ``legacy, server = replay_fixtures(...)`` in a test module.

    ``legacy``: the recorded Poloniex 5-minute candles, read once per module with the project's
    reader. ``server``: a :class:`~cryptoflow.replay.ReplayServer` thread over the first ``rows``
    of them, with fault delays (``retry_after``, ``slow_seconds``) short enough for tests.
    """
    from cryptoflow.replay import ReplayServer
    from storage.recorded import load_recorded
    from tests.support.paths import shared_file
    from tests.support.realdata import POLONIEX_5M

    @pytest.fixture(scope="module", name="legacy")
    def legacy_fixture():
        return load_recorded(shared_file(POLONIEX_5M))

    @pytest.fixture(name="server")
    def server_fixture(legacy):
        with ReplayServer(
            legacy.iloc[:rows], retry_after=retry_after, slow_seconds=slow_seconds
        ) as srv:
            yield srv

    return legacy_fixture, server_fixture
