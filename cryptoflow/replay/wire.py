"""HTTP plumbing of the replay: the threaded server, its handler, replies, errors, a TCP reset."""

from __future__ import annotations

import contextlib
import socket
import struct
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

import orjson


class Router(Protocol):
    """What the handler hands each request to (the replay server)."""

    def handle(self, req: Handler, method: str) -> None: ...


class Handler(BaseHTTPRequestHandler):
    """Keep-alive HTTP/1.1 handler that routes GET and POST to the server's router."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out at once, no 40 ms delayed-ACK stall
    server: HTTPServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Quiet: the replay keeps its own request log."""

    def do_GET(self) -> None:  # noqa: N802
        self.server.router.handle(self, "GET")

    def do_POST(self) -> None:  # noqa: N802
        self.server.router.handle(self, "POST")


class HTTPServer(ThreadingHTTPServer):
    """A thread per connection (daemon threads), the address reusable at once."""

    daemon_threads = True
    allow_reuse_address = True
    router: Router


def error_body(code: int, message: str) -> bytes:
    """The API's error body: ``{"code": <int>, "message": "..."}``."""
    return orjson.dumps({"code": code, "message": message})


def send(req: Handler, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
    """Reply with a JSON ``body``; a client that hung up is not an error."""
    try:
        req.send_response(status)
        req.send_header("Content-Type", "application/json")
        req.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            req.send_header(key, value)
        req.end_headers()
        req.wfile.write(body)
    except (BrokenPipeError, ConnectionResetError):
        req.close_connection = True


def reset(req: Handler) -> None:
    """Abort the connection with a TCP RST (SO_LINGER 0), as a crashed peer would."""
    with contextlib.suppress(OSError):
        req.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    req.close_connection = True
    with contextlib.suppress(OSError):
        req.connection.close()
