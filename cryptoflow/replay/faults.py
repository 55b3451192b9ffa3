"""Fault injection: which candle request fails, and how (``"3:429,5-6:reset"``)."""

from __future__ import annotations

import threading
from enum import StrEnum

import orjson

from cryptoflow.replay.wire import error_body
from storage.errors import BadInputError


class Fault(StrEnum):
    """Injectable failures of one candle request."""

    RATE_LIMIT = "429"  # HTTP 429 with Retry-After
    SERVER_ERROR = "500"  # HTTP 500
    BUSY = "busy"  # code 24201, "please try again later"
    RESET = "reset"  # TCP connection reset instead of a reply
    SLOW = "slow"  # a correct reply after ``slow_seconds`` (longer than the client's timeout)
    TRUNCATED = "truncated"  # the body cut in half (consistent Content-Length: invalid JSON)
    MALFORMED = "malformed"  # one row broken (its high below its low)
    EMPTY = "empty"  # HTTP 200 with ``[]``: a page that lost every row
    SHORT = "short"  # HTTP 200 with only the first half of the rows
    OPEN = "open"  # the last row served still open (ts < closeTime, volume 0, high = low = open)
    LONG_RATE_LIMIT = "429-long"  # HTTP 429 with a huge Retry-After (one day)

#: Retry-After (seconds) of a ``429-long`` fault: far beyond any client's cap.
LONG_RETRY_AFTER_S = 86_400.0


def parse_faults(spec: str | None) -> dict[int, Fault]:
    """``"3:429,5-7:reset"`` -> ``{3: Fault.RATE_LIMIT, 5: RESET, 6: RESET, 7: RESET}``."""
    faults: dict[int, Fault] = {}
    for item in (spec or "").split(","):
        item = item.strip()
        if not item:
            continue
        where, sep, kind = item.partition(":")
        try:
            fault = Fault(kind.strip().lower())
            lo, _, hi = where.partition("-")
            first, last = int(lo), int(hi or lo)
        except ValueError:
            kinds = ", ".join(f.value for f in Fault)
            raise BadInputError(
                f"bad fault {item!r}: expected N:KIND or N-M:KIND with KIND in {kinds}"
            ) from None
        if not sep or first < 1 or last < first or last - first > 100_000:
            raise BadInputError(
                f"bad fault {item!r}: request numbers start at 1, N-M with N <= M"
            )
        faults.update(dict.fromkeys(range(first, last + 1), fault))
    return faults


class FaultPlan:
    """Numbers the candle requests and says which fault, if any, hits each; thread-safe.

    A new plan (:meth:`replace`) counts its request numbers from the next candle request.
    """

    def __init__(self, spec: str = "") -> None:
        self._faults = parse_faults(spec)
        self._lock = threading.Lock()
        self._count = 0
        self._offset = 0

    def replace(self, spec: str) -> None:
        """Swap in the plan ``spec``; its number 1 is the next candle request."""
        faults = parse_faults(spec)
        with self._lock:
            self._faults = faults
            self._offset = self._count

    def next_request(self) -> tuple[int, Fault | None]:
        """Count one more candle request: (its number since start, its fault or None)."""
        with self._lock:
            self._count += 1
            return self._count, self._faults.get(self._count - self._offset)


def error_reply(fault: Fault | None, retry_after: float) -> tuple[int, bytes, dict] | None:
    """(status, body, headers) of a fault answered instead of the page, else None."""
    if fault in (Fault.RATE_LIMIT, Fault.LONG_RATE_LIMIT):
        wait = LONG_RETRY_AFTER_S if fault is Fault.LONG_RATE_LIMIT else retry_after
        return 429, error_body(429, "too many requests"), {"Retry-After": f"{wait:g}"}
    if fault is Fault.SERVER_ERROR:
        return 500, error_body(500, "internal server error"), {}
    if fault is Fault.BUSY:
        return 400, error_body(24201, "PLEASE TRY AGAIN LATER"), {}
    return None


def alter_page(fault: Fault | None, rows: list[bytes]) -> list[bytes]:
    """The rows (n,) of a page as the fault serves them (unchanged for other faults)."""
    if fault is Fault.MALFORMED:
        return malform(rows)
    if fault is Fault.EMPTY:
        return []
    if fault is Fault.SHORT:
        return rows[: len(rows) // 2]
    if fault is Fault.OPEN:
        return [*rows[:-1], still_open(rows[-1])] if rows else rows
    return rows


def still_open(row: bytes) -> bytes:
    """``row`` as a candle just opened: high = low = close = open, volumes 0, ts < closeTime."""
    fields = orjson.loads(row)
    fields[0] = fields[1] = fields[3] = fields[2]
    fields[4] = fields[5] = fields[6] = fields[7] = "0"
    fields[8] = 0
    fields[9] = (fields[12] + fields[13]) // 2  # ts: halfway through the candle
    fields[10] = fields[2]
    return orjson.dumps(fields)


def malform(rows: list[bytes]) -> list[bytes]:
    """The rows (n,) with the middle one broken: its low above its high."""
    if not rows:
        return rows
    rows = list(rows)
    mid = len(rows) // 2
    fields = orjson.loads(rows[mid])
    fields[0], fields[1] = str(float(fields[1]) + 1.0), fields[0]  # low above high
    rows[mid] = orjson.dumps(fields)
    return rows


def truncate(body: bytes) -> bytes:
    """The first half of ``body`` (at least one byte): invalid JSON."""
    return body[: max(1, len(body) // 2)]
