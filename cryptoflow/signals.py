"""Orderly shutdown of the console script on SIGINT and SIGTERM, whatever its parent left set.

Two ways a signal went unanswered or left things behind: a process started as a background job
of a non-interactive shell (``cmd &``, a CI script) inherits SIGINT *ignored*, and Python then
installs no KeyboardInterrupt handler, so ``cryptoflow replay`` ignored SIGINT for ever; and
SIGTERM's default action ends the process at once, with no ``finally`` and no ``atexit``, so
the temporary Prefect server (a uvicorn subprocess started when ``PREFECT_API_URL`` is unset)
was left running. Inside :func:`orderly_shutdown` both signals raise KeyboardInterrupt in the
main thread, so the process unwinds and exits normally and Prefect's own ``atexit`` handler
stops the temporary server (after its log and event workers have drained into it). For the
console script, a signal after the block (while worker threads finish) ends the process at
once (exit 130), stopping that server first.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any

from storage.errors import EXIT_INTERRUPTED

#: The signals that stop a command: Ctrl-C, and ``kill``/``timeout``/a service manager.
SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _terminate(signum: int, frame: Any) -> None:
    """SIGTERM: the same orderly shutdown as Ctrl-C."""
    raise KeyboardInterrupt(signal.Signals(signum).name)


def temporary_prefect_server() -> Any | None:
    """Prefect's temporary API server of this process, when one is running (else None).

    Prefect keeps it as the ``SubprocessASGIServer()`` singleton (no port given) and starts it
    on first use when ``PREFECT_API_URL`` is unset; nothing is imported or started here.
    """
    module = sys.modules.get("prefect.server.api.server")
    if module is None:
        return None
    server = module.SubprocessASGIServer()
    return server if server.server_process is not None else None


def _stop_started_server(before: Any | None) -> None:
    """Stop the temporary Prefect server unless it was already running at ``before``."""
    server = temporary_prefect_server()
    if server is not None and server is not before:
        with contextlib.suppress(Exception):
            server.stop()  # terminate, wait 5 s, kill


@contextlib.contextmanager
def orderly_shutdown(*, restore: bool = True) -> Iterator[None]:
    """For the block: SIGINT and SIGTERM raise KeyboardInterrupt (in the main thread only).

    SIGINT gets Python's own ``default_int_handler`` (so asyncio's runner still turns the first
    Ctrl-C into a cancellation), SIGTERM a handler that does the same. After the block,
    ``restore`` puts the previous handlers back (in-process callers); without it (the console
    script) a further signal exits at once.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = temporary_prefect_server()
    previous = {s: signal.getsignal(s) for s in SIGNALS}
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _terminate)
    try:
        yield  # an interrupt unwinds through ``finally`` blocks; Prefect's atexit stops its server
    finally:
        for s, handler in previous.items():
            if not restore:
                signal.signal(s, _exit_now(before))
            elif handler is not None:  # None: set outside Python, cannot be put back
                signal.signal(s, handler)


def _exit_now(before: Any | None):
    """A handler that stops the temporary server started since ``before`` and exits 130."""

    def handler(signum: int, frame: Any) -> None:
        _stop_started_server(before)
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        os._exit(EXIT_INTERRUPTED)

    return handler
