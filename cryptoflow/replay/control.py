"""The replay's request log and its HTTP control endpoints (``/_replay/*``).

A server run as ``cryptoflow replay`` in another process is driven over HTTP:
``POST /_replay/clock?now=<ms>``, ``GET /_replay/requests``, ``POST /_replay/faults?spec=...``
(the fault numbering restarts at 1).
"""

from __future__ import annotations

import threading
from typing import Any, Protocol

import orjson

from cryptoflow.replay.clock import check_now_ms
from cryptoflow.replay.wire import error_body
from storage.errors import BadInputError


class RequestLog:
    """Every request, in arrival order; thread-safe.

    Each entry: n (candle-request number or None), method, path, params, status, fault, rows,
    client_port, time.
    """

    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def add(self, entry: dict[str, Any], status: int, rows: int | None = None) -> None:
        """Record ``entry`` with its reply ``status`` and ``rows`` served."""
        entry["status"] = status
        entry["rows"] = rows
        with self._lock:
            self.entries.append(entry)

    def candle_requests(self) -> list[dict[str, Any]]:
        """The logged candle requests (those with a number ``n``)."""
        with self._lock:
            return [r for r in self.entries if r["n"] is not None]

    def to_json(self) -> bytes:
        """The whole log as a JSON array."""
        with self._lock:
            return orjson.dumps(self.entries)


class Controlled(Protocol):
    """What the control endpoints act on (the replay server)."""

    log: RequestLog

    @property
    def now_ms(self) -> int: ...

    def set_now(self, ms: int) -> None: ...

    def set_faults(self, spec: str) -> None: ...


def control_reply(
    server: Controlled, method: str, path: str, params: dict[str, str]
) -> tuple[int, bytes]:
    """(status, body) of one ``/_replay/*`` request; bad parameters raise :class:`BadInputError`."""
    if path == "/_replay/requests" and method == "GET":
        return 200, server.log.to_json()
    if path == "/_replay/clock" and method == "POST":
        if "now" not in params:
            raise BadInputError("POST /_replay/clock needs ?now=<epoch ms>")
        server.set_now(check_now_ms(int(params["now"]), "?now"))
        return 200, orjson.dumps({"now": server.now_ms})
    if path == "/_replay/faults" and method == "POST":
        server.set_faults(params.get("spec", ""))
        return 200, orjson.dumps({"faults": params.get("spec", "")})
    return 404, error_body(404, f"no control route {method} {path}")
