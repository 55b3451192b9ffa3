"""The replay's movable server clock (epoch ms) and the ``--now`` parser."""

from __future__ import annotations

import threading

import pandas as pd

from storage.errors import BadInputError


class Clock:
    """The server's "now" in epoch ms; moved by tests or ``POST /_replay/clock``; thread-safe."""

    def __init__(self, now_ms: int) -> None:
        self._now_ms = int(now_ms)
        self._lock = threading.Lock()

    @property
    def now_ms(self) -> int:
        """The current server time, epoch ms."""
        with self._lock:
            return self._now_ms

    def set(self, ms: int) -> None:
        """Move the clock to epoch ``ms`` (forwards or backwards)."""
        with self._lock:
            self._now_ms = int(ms)


def parse_now(text: str | None) -> int | None:
    """``--now`` as epoch ms: an integer (ms) or an ISO date/time (UTC unless it says)."""
    if text is None or text == "":
        return None
    if text.strip().lstrip("-").isdigit():
        return int(text)
    try:
        ts = pd.Timestamp(text)
    except ValueError:
        raise BadInputError(
            f"--now must be epoch ms or an ISO date/time, got {text!r}"
        ) from None
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return int(ts.value // 1_000_000)
