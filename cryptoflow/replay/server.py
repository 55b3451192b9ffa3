"""The replay server: a Poloniex v3 stand-in on 127.0.0.1 that routes, logs and serves requests.

Serves ``GET /markets/{symbol}/candles`` (see :mod:`cryptoflow.replay.market`) and
``GET /timestamp``, injects the planned faults (:mod:`cryptoflow.replay.faults`), answers the
control endpoints (:mod:`cryptoflow.replay.control`); in a daemon thread (a context manager) or
in the calling thread until interrupted (``cryptoflow replay``).
"""

from __future__ import annotations

import threading
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
import pandas as pd

from cryptoflow.replay.clock import Clock
from cryptoflow.replay.control import RequestLog, control_reply
from cryptoflow.replay.faults import Fault, FaultPlan, alter_page, error_reply, truncate
from cryptoflow.replay.market import ApiError, Markets
from cryptoflow.replay.wire import Handler, HTTPServer, error_body, reset, send
from storage.errors import BadInputError
from storage.schema import Interval, validate_symbol


class ReplayServer:
    """A Poloniex v3 stand-in on 127.0.0.1 over recorded candles, in a thread; a context manager.

    ``candles`` is one series in the candle schema (n rows) served as ``symbol``; ``markets``
    adds more symbols (same interval). ``now_ms`` defaults to just after the last candle closes
    (everything closed).
    """

    def __init__(
        self,
        candles: pd.DataFrame,
        symbol: str = "BTC_USDT",
        interval: Interval | str | None = "MINUTE_5",
        now_ms: int | None = None,
        faults: str = "",
        port: int = 0,
        *,
        retry_after: float = 1.0,
        slow_seconds: float = 15.0,
        markets: dict[str, pd.DataFrame] | None = None,
    ) -> None:
        self.symbol = validate_symbol(symbol)
        self.interval = Interval.parse(interval or candles.attrs.get("interval") or "MINUTE_5")
        self.markets = Markets({self.symbol: candles, **(markets or {})}, self.interval)
        self.clock = Clock(int(now_ms) if now_ms is not None else max(self.markets.end_ms, 1))
        self.retry_after = retry_after
        self.slow_seconds = slow_seconds
        self.log = RequestLog()
        self._faults = FaultPlan(faults)
        try:
            self._httpd = HTTPServer(("127.0.0.1", port), Handler)
        except OSError as exc:  # EADDRINUSE, EACCES: one line, exit 2
            raise BadInputError(
                f"cannot listen on 127.0.0.1:{port}: {exc.strerror or exc} "
                "(choose another --port, or 0 for any free one)"
            ) from None
        self._httpd.router = self
        self._thread: threading.Thread | None = None

    # -- lifecycle
    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ReplayServer:
        """Serve in a daemon thread."""
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="replay-server", daemon=True
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in this thread until KeyboardInterrupt (SIGINT/SIGTERM under the CLI) or stop()."""
        try:
            self._httpd.serve_forever()
        finally:
            self._httpd.server_close()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> ReplayServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- control
    @property
    def now_ms(self) -> int:
        """The server clock, epoch ms."""
        return self.clock.now_ms

    @property
    def requests(self) -> list[dict[str, Any]]:
        """The request log (see :class:`~cryptoflow.replay.control.RequestLog`)."""
        return self.log.entries

    def set_now(self, ms: int) -> None:
        """Move the server clock to epoch ``ms``."""
        self.clock.set(ms)

    def set_faults(self, spec: str) -> None:
        """Replace the fault plan; its request numbers count from the next candle request."""
        self._faults.replace(spec)

    def candle_requests(self) -> list[dict[str, Any]]:
        """The logged candle requests (each: n, path, params, status, fault, rows)."""
        return self.log.candle_requests()

    # -- HTTP
    def handle(self, req: Handler, method: str) -> None:
        """Route one request."""
        url = urlsplit(req.path)
        params = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        entry: dict[str, Any] = {"n": None, "method": method, "path": url.path, "params": params}
        entry["client_port"] = req.client_address[1]
        entry["time"] = time.time()
        entry["fault"] = None
        try:
            if url.path.startswith("/_replay/"):
                status, body = control_reply(self, method, url.path, params)
            elif method != "GET":
                status, body = 405, error_body(405, "method not allowed")
            elif url.path == "/timestamp":
                status, body = 200, orjson.dumps({"serverTime": self.now_ms})
            elif url.path.startswith("/markets/") and url.path.endswith("/candles"):
                self._candles_reply(req, url.path, params, entry)
                return
            else:
                status, body = 404, error_body(404, f"no route {url.path}")
        except ValueError as exc:
            status, body = 400, error_body(601, str(exc))
        self.log.add(entry, status)
        send(req, status, body)

    def _candles_reply(
        self, req: Handler, path: str, params: dict[str, str], entry: dict[str, Any]
    ) -> None:
        """One candles request: its fault if planned, else the page (late, cut or broken)."""
        n, fault = self._faults.next_request()
        now = self.now_ms
        entry["n"] = n
        entry["fault"] = fault.value if fault else None
        if fault is Fault.RESET:
            self.log.add(entry, 0)
            reset(req)
            return
        refusal = error_reply(fault, self.retry_after)
        if refusal is not None:
            status, body, headers = refusal
            self.log.add(entry, status)
            send(req, status, body, headers)
            return
        symbol = path[len("/markets/") : -len("/candles")]
        try:
            rows = self.markets.page(symbol, params, now)
        except ApiError as exc:
            status, body, count = 400, error_body(exc.code, exc.message), None
        else:
            rows = alter_page(fault, rows)
            status, body, count = 200, b"[" + b",".join(rows) + b"]", len(rows)
        self.log.add(entry, status, count)
        if fault is Fault.SLOW:
            time.sleep(self.slow_seconds)
        if fault is Fault.TRUNCATED:
            body = truncate(body)
        send(req, status, body)
