"""The exclusive per-series write lock: ``flock`` on ``<series>/.lock``, re-entrant in a thread."""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

DEFAULT_LOCK_TIMEOUT_S = 10.0


class StoreLockedError(TimeoutError):
    """Another writer holds the series lock."""


class _HeldLock:
    """Per-lock-file state shared by the threads of this process."""

    def __init__(self) -> None:
        self.rlock = threading.RLock()
        self.depth = 0
        self.fd: int | None = None


_LOCKS: dict[str, _HeldLock] = {}
_LOCKS_GUARD = threading.Lock()


def _held_lock(path: Path) -> _HeldLock:
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(str(path), _HeldLock())


def _locked_message(label: str, path: Path, timeout: float) -> str:
    return (
        f"another ingest of {label} is running (lock {path} held for more than "
        f"{timeout:g} s); wait for it to finish"
    )


@contextlib.contextmanager
def series_lock(path: Path, label: str, timeout: float) -> Iterator[None]:
    """Hold the exclusive lock file ``path`` of the series ``label`` ("BTC_USDT MINUTE_5").

    Re-entrant within one thread; other threads and processes wait up to ``timeout`` seconds,
    then get :class:`StoreLockedError`.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    held = _held_lock(path)
    deadline = time.monotonic() + max(0.0, timeout)
    if not held.rlock.acquire(timeout=max(0.0, timeout)):
        raise StoreLockedError(_locked_message(label, path, timeout))
    try:
        if held.depth == 0:
            held.fd = _flock(path, deadline, label, timeout)
        held.depth += 1
        try:
            yield
        finally:
            held.depth -= 1
            if held.depth == 0 and held.fd is not None:
                fcntl.flock(held.fd, fcntl.LOCK_UN)
                os.close(held.fd)
                held.fd = None
    finally:
        held.rlock.release()


def _flock(path: Path, deadline: float, label: str, timeout: float) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return fd
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise StoreLockedError(_locked_message(label, path, timeout)) from None
                time.sleep(0.02)
    except BaseException:
        os.close(fd)
        raise
