"""The client-side rate limit: a thread-safe token bucket that honours a server's Retry-After,
and whose waits end at once when its stop event is set."""

from __future__ import annotations

import threading
import time

from tasks.poloniex.errors import FetchInterrupted


class TokenBucket:
    """Thread-safe token bucket: at most ``rate`` acquisitions per second, bursts of ``rate``."""

    def __init__(self, rate: float | None, stop: threading.Event | None = None) -> None:
        self.rate = float(rate or 0.0)
        self.stop = stop or threading.Event()
        self.capacity = max(1.0, self.rate)
        self._tokens = self.capacity
        self._last = time.monotonic()
        self._not_before = 0.0
        self._lock = threading.Lock()

    def pause_until(self, monotonic_deadline: float) -> None:
        """Hold every caller until ``monotonic_deadline`` (a server's Retry-After)."""
        with self._lock:
            self._not_before = max(self._not_before, monotonic_deadline)

    def acquire(self) -> None:
        """Block until one request may be sent; :class:`FetchInterrupted` once ``stop`` is set."""
        while True:
            if self.stop.is_set():
                raise FetchInterrupted("stopped before sending a request")
            with self._lock:
                now = time.monotonic()
                wait = self._not_before - now
                if wait <= 0 and self.rate <= 0:
                    return
                if wait <= 0:
                    self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
                    self._last = now
                    if self._tokens >= 1.0:
                        self._tokens -= 1.0
                        return
                    wait = (1.0 - self._tokens) / self.rate
            if self.stop.wait(wait):
                raise FetchInterrupted("stopped while waiting for the rate limit")
