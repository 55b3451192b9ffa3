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


#: The server times the replay accepts, epoch ms: from 2000-01-01 (a smaller number is a typo or
#: seconds, not ms) to the last instant a pandas timestamp can hold.
MIN_NOW_MS = 946_684_800_000
MAX_NOW_MS = pd.Timestamp.max.value // 1_000_000
_RANGE = "from 2000-01-01 to 2262-04-11 (epoch ms or an ISO date/time)"


def check_now_ms(ms: int, name: str = "--now", given: str | None = None) -> int:
    """``ms`` if it is a server time the replay accepts, else :class:`BadInputError` (naming
    ``name`` and what was ``given``)."""
    if not MIN_NOW_MS <= ms <= MAX_NOW_MS:
        raise BadInputError(f"{name} must be a time {_RANGE}, got {given or ms}")
    return int(ms)


def parse_now(text: str | None) -> int | None:
    """``--now`` as epoch ms: an integer (ms) or an ISO date/time (UTC unless it says)."""
    if text is None or text == "":
        return None
    if text.strip().lstrip("-").isdigit():
        return check_now_ms(int(text))
    try:
        ts = pd.Timestamp(text)
    except ValueError:  # pandas' out-of-bounds error is a ValueError too
        raise BadInputError(f"--now must be a time {_RANGE}, got {text!r}") from None
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    ms = int(ts.as_unit("ms").asm8.view("int64"))  # in ms: no nanosecond overflow past 2262
    return check_now_ms(ms, given=repr(text))
