"""A Poloniex-v3-compatible HTTP server over recorded candles, for offline use and tests.

Serves ``GET /markets/{symbol}/candles`` and ``GET /timestamp`` on 127.0.0.1 with the real API's
semantics: ``limit`` defaults to 100 and may not exceed 500; the answer is anchored to
``endTime`` (default: now), so with only ``startTime`` the *latest* candles come back; numbers are
strings; errors are ``{"code", "message"}`` with a non-200 status (24101 unknown symbol, 24102
bad interval, 24103 bad endTime, 24104 bad limit, 24105 bad startTime). Nothing after the server
clock is served.

**The still-open candle** (``open_time <= now < open_time + interval``, the candle store's
rule: it has closed only once ``close_time < now``) is served partial by the *scale
rule*: with ``f = (now - open_time) / interval`` elapsed, ``open`` is the recorded open,
``high``/``low``/``close`` are ``open + f * (recorded - open)``, volumes and the trade count are
scaled by ``f``. So it always differs from the final candle (a store that kept it would be
caught) while keeping ``low <= open, close <= high``.

The clock is movable (:meth:`ReplayServer.set_now`), every request is logged, and faults are
injected by candle-request number (``"3:429,5-6:reset"``; kinds in :class:`Fault`). A server
started as ``cryptoflow replay`` is driven over HTTP: ``POST /_replay/clock?now=<ms>``,
``GET /_replay/requests``, ``POST /_replay/faults?spec=...`` (numbering restarts at 1).

Recorded files (:func:`load_recorded`): the legacy Poloniex ``returnChartData`` CSV (``date`` in
seconds, ``volume`` = quote currency, ``quoteVolume`` = base currency), Bitfinex 1-minute CSV(.gz)
(no header: ms, open, close, high, low, volume), the derived Bitfinex 5-minute CSV(.gz)
(``timestamp`` in seconds, open, high, low, close, volume) and a Parquet candle store folder.
Bitfinex records no quote volume and no trade count: ``volume_quote`` is estimated as
``volume * (high + low + close) / 3`` and ``trade_count`` is 0 (legacy Poloniex files have no
trade count either). ``buyTakerAmount``/``buyTakerQuantity`` are not recorded and served as "0".
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from enum import StrEnum
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
import orjson
import pandas as pd

from storage.schema import CANDLE_COLUMNS, Interval, cast_candles, to_ms, validate_symbol

DEFAULT_LIMIT = 100
MAX_LIMIT = 500
_INTERVAL_BY_MS = {}
for _iv in Interval:
    with contextlib.suppress(ValueError):
        _INTERVAL_BY_MS[_iv.ms] = _iv


class Fault(StrEnum):
    """Injectable failures of one candle request."""

    RATE_LIMIT = "429"  # HTTP 429 with Retry-After
    SERVER_ERROR = "500"  # HTTP 500
    BUSY = "busy"  # code 24201, "please try again later"
    RESET = "reset"  # TCP connection reset instead of a reply
    SLOW = "slow"  # a correct reply after ``slow_seconds`` (longer than the client's timeout)
    TRUNCATED = "truncated"  # the body cut in half (consistent Content-Length: invalid JSON)
    MALFORMED = "malformed"  # one row broken (its high below its low)


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
            raise ValueError(
                f"bad fault {item!r}: expected N:KIND or N-M:KIND with KIND in {kinds}"
            ) from None
        if not sep or first < 1 or last < first or last - first > 100_000:
            raise ValueError(f"bad fault {item!r}: request numbers start at 1, N-M with N <= M")
        faults.update(dict.fromkeys(range(first, last + 1), fault))
    return faults


# ----------------------------------------------------------------------------- recorded files


def _infer_interval(open_ms: np.ndarray) -> Interval:
    """The interval of sorted open times (n,): the most common spacing."""
    if len(open_ms) < 2:
        raise ValueError("cannot infer the interval from fewer than 2 candles: pass interval=")
    steps, counts = np.unique(np.diff(open_ms), return_counts=True)
    step = int(steps[np.argmax(counts)])
    if step not in _INTERVAL_BY_MS:
        raise ValueError(f"candle spacing of {step} ms is not a Poloniex interval: pass interval=")
    return _INTERVAL_BY_MS[step]


def _finish(frame: pd.DataFrame, interval: Interval | str | None) -> pd.DataFrame:
    """Sort, check, add close_time and cast a recorded frame to the candle schema (n rows)."""
    frame = frame.sort_values("open_time", kind="stable").reset_index(drop=True)
    open_ms = frame["open_time"].to_numpy(dtype=np.int64)
    if len(open_ms) > 1 and (np.diff(open_ms) == 0).any():
        raise ValueError("recorded candles repeat an open time")
    iv = Interval.parse(interval) if interval else _infer_interval(open_ms)
    if (open_ms % iv.ms).any():
        raise ValueError(f"recorded candles are not on the {iv.value} grid")
    frame["close_time"] = open_ms + iv.ms - 1
    out = cast_candles(frame)
    out.attrs["interval"] = iv.value
    return out


def _read_csv(path: Path, **kwargs: Any) -> pd.DataFrame:
    """pandas >= 3 parses floats correctly rounded by default (the same doubles as ``float()``)."""
    return pd.read_csv(path, **kwargs)


def load_recorded(
    path: str | Path, *, interval: Interval | str | None = None, symbol: str | None = None
) -> pd.DataFrame:
    """Recorded candles (n rows, candle schema, sorted); ``attrs["interval"]`` names the interval.

    ``interval`` defaults to the most common spacing; ``symbol``/``interval`` pick one series out
    of a Parquet store folder holding several.
    """
    path = Path(path)
    if path.is_dir():
        return _load_parquet_dir(path, interval=interval, symbol=symbol)
    if not path.is_file():
        raise ValueError(f"recorded data {path} does not exist")
    if path.suffix == ".parquet":
        return _finish(pd.read_parquet(path), interval)
    head = pd.read_csv(path, nrows=2, header=None, dtype=str)
    first = [str(v).strip().strip('"').lower() for v in head.iloc[0]]
    if "date" in first and "quotevolume" in first:  # legacy Poloniex returnChartData
        raw = _read_csv(path)
        frame = pd.DataFrame(
            {
                "open_time": raw["date"].astype("int64") * 1000,
                "open": raw["open"],
                "high": raw["high"],
                "low": raw["low"],
                "close": raw["close"],
                "volume_base": raw["quoteVolume"],
                "volume_quote": raw["volume"],
                "trade_count": 0,
            }
        )
        return _finish(frame, interval)
    if first[:6] == ["timestamp", "open", "high", "low", "close", "volume"]:  # Bitfinex 5m
        raw = _read_csv(path)
        return _finish(_bitfinex(raw["timestamp"].astype("int64") * 1000, raw), interval)
    if len(first) == 6 and all(_is_number(v) for v in first):  # Bitfinex 1m, no header
        raw = _read_csv(path, header=None, names=["mts", "open", "close", "high", "low", "volume"])
        return _finish(_bitfinex(raw["mts"].astype("int64"), raw), interval)
    raise ValueError(
        f"{path.name}: unrecognised format (columns {first}); expected a legacy Poloniex CSV "
        "(date,high,low,open,close,volume,quoteVolume,...), a Bitfinex 1-minute CSV "
        "(MTS,OPEN,CLOSE,HIGH,LOW,VOLUME), the Bitfinex 5-minute CSV "
        "(timestamp,open,high,low,close,volume) or a Parquet candle store folder"
    )


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _bitfinex(open_ms: pd.Series, raw: pd.DataFrame) -> pd.DataFrame:
    """Bitfinex columns -> candle columns (volume_quote estimated from the typical price)."""
    typical = (raw["high"] + raw["low"] + raw["close"]) / 3.0
    return pd.DataFrame(
        {
            "open_time": open_ms,
            "open": raw["open"],
            "high": raw["high"],
            "low": raw["low"],
            "close": raw["close"],
            "volume_base": raw["volume"],
            "volume_quote": raw["volume"] * typical,
            "trade_count": 0,
        }
    )


def _load_parquet_dir(
    root: Path, *, interval: Interval | str | None, symbol: str | None
) -> pd.DataFrame:
    files = sorted(root.rglob("*.parquet"))
    if symbol:
        files = [f for f in files if f"symbol={validate_symbol(symbol)}" in f.parts] or files
    if interval:
        iv = Interval.parse(interval).value
        files = [f for f in files if f"interval={iv}" in f.parts] or files
    if not files:
        raise ValueError(f"no Parquet candle files under {root}")
    series = {tuple(p for p in f.parts if p.startswith(("symbol=", "interval="))) for f in files}
    if len(series) > 1:
        raise ValueError(
            f"{root} holds several series {sorted(series)}: pass --symbol and --interval"
        )
    if interval is None:
        named = [p.split("=", 1)[1] for p in next(iter(series)) if p.startswith("interval=")]
        interval = named[0] if named else None
    frames = [pd.read_parquet(f, columns=list(CANDLE_COLUMNS)) for f in files]
    frame = pd.concat([cast_candles(f) for f in frames], ignore_index=True)
    frame["open_time"] = to_ms(frame["open_time"])
    return _finish(frame.drop(columns="close_time"), interval)


# ----------------------------------------------------------------------------- the server


def _render_rows(candles: pd.DataFrame, interval: Interval) -> list[bytes]:
    """One JSON array per candle (n,), in the v3 field order, numbers as exact strings."""
    c = {col: candles[col].tolist() for col in ("open", "high", "low", "close")}
    base = candles["volume_base"].tolist()
    quote = candles["volume_quote"].tolist()
    trades = candles["trade_count"].tolist()
    start = to_ms(candles["open_time"]).tolist()
    iv = interval.value
    step = interval.ms
    out = []
    for i in range(len(start)):
        wavg = quote[i] / base[i] if base[i] > 0 else c["close"][i]
        s = start[i]
        out.append(
            f'["{c["low"][i]!r}","{c["high"][i]!r}","{c["open"][i]!r}","{c["close"][i]!r}",'
            f'"{quote[i]!r}","{base[i]!r}","0","0",{trades[i]},{s + step - 1},"{wavg!r}",'
            f'"{iv}",{s},{s + step - 1}]'.encode()
        )
    return out


class _Series:
    """One symbol's candles (n rows), their open times (n,) and pre-rendered rows (n,)."""

    def __init__(self, candles: pd.DataFrame, interval: Interval) -> None:
        self.candles = cast_candles(candles)
        self.interval = interval
        self.open_ms = to_ms(self.candles["open_time"])
        if len(self.open_ms) and (
            (np.diff(self.open_ms) <= 0).any() or (self.open_ms % interval.ms).any()
        ):
            raise ValueError(f"candles must be sorted, unique and on the {interval} grid")
        self.rows = _render_rows(self.candles, interval)
        self.end_ms = int(self.open_ms[-1]) + interval.ms if len(self.open_ms) else 0

    def partial(self, i: int, now_ms: int) -> bytes:
        """Candle ``i``, still open at ``now_ms``, scaled to its elapsed fraction (scale rule)."""
        record = self.candles.iloc[i]
        start = int(self.open_ms[i])
        f = (now_ms - start) / self.interval.ms
        o = float(record["open"])
        low, high, close = (o + f * (float(record[k]) - o) for k in ("low", "high", "close"))
        base = float(record["volume_base"]) * f
        quote = float(record["volume_quote"]) * f
        wavg = quote / base if base > 0 else close
        row = [
            repr(low), repr(high), repr(o), repr(close), repr(quote), repr(base), "0", "0",
            int(int(record["trade_count"]) * f), now_ms, repr(wavg), self.interval.value, start,
            start + self.interval.ms - 1,
        ]  # fmt: skip
        return orjson.dumps(row)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out at once, no 40 ms delayed-ACK stall
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Quiet: the replay keeps its own request log."""

    def do_GET(self) -> None:  # noqa: N802
        self.server.replay.handle(self, "GET")

    def do_POST(self) -> None:  # noqa: N802
        self.server.replay.handle(self, "POST")


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    replay: ReplayServer


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
        self._series: dict[str, _Series] = {}
        for name, frame in {self.symbol: candles, **(markets or {})}.items():
            self._series[validate_symbol(name)] = _Series(frame, self.interval)
        last = max((s.end_ms for s in self._series.values()), default=0)
        self.now_ms = int(now_ms) if now_ms is not None else max(last, 1)
        self.retry_after = retry_after
        self.slow_seconds = slow_seconds
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._candle_requests = 0
        self._fault_offset = 0
        self._faults = parse_faults(faults)
        self._httpd = _HTTPServer(("127.0.0.1", port), _Handler)
        self._httpd.replay = self
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
        """Serve in this thread until Ctrl-C (or :meth:`stop` from another thread)."""
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
    def set_now(self, ms: int) -> None:
        """Move the server clock to epoch ``ms``."""
        with self._lock:
            self.now_ms = int(ms)

    def set_faults(self, spec: str) -> None:
        """Replace the fault plan; its request numbers count from the next candle request."""
        faults = parse_faults(spec)
        with self._lock:
            self._faults = faults
            self._fault_offset = self._candle_requests

    def candle_requests(self) -> list[dict[str, Any]]:
        """The logged candle requests (each: n, path, params, status, fault, rows)."""
        with self._lock:
            return [r for r in self.requests if r["n"] is not None]

    # -- HTTP
    def handle(self, req: _Handler, method: str) -> None:
        """Route one request."""
        url = urlsplit(req.path)
        params = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        entry: dict[str, Any] = {"n": None, "method": method, "path": url.path, "params": params}
        entry["client_port"] = req.client_address[1]
        entry["time"] = time.time()
        entry["fault"] = None
        try:
            if url.path.startswith("/_replay/"):
                status, body = self._control(method, url.path, params)
            elif method != "GET":
                status, body = 405, _error(405, "method not allowed")
            elif url.path == "/timestamp":
                status, body = 200, orjson.dumps({"serverTime": self.now_ms})
            elif url.path.startswith("/markets/") and url.path.endswith("/candles"):
                self._candles_reply(req, url.path, params, entry)
                return
            else:
                status, body = 404, _error(404, f"no route {url.path}")
        except ValueError as exc:
            status, body = 400, _error(601, str(exc))
        self._log(entry, status)
        _send(req, status, body)

    def _log(self, entry: dict[str, Any], status: int, rows: int | None = None) -> None:
        entry["status"] = status
        entry["rows"] = rows
        with self._lock:
            self.requests.append(entry)

    def _control(self, method: str, path: str, params: dict[str, str]) -> tuple[int, bytes]:
        if path == "/_replay/requests" and method == "GET":
            with self._lock:
                return 200, orjson.dumps(self.requests)
        if path == "/_replay/clock" and method == "POST":
            if "now" not in params:
                raise ValueError("POST /_replay/clock needs ?now=<epoch ms>")
            self.set_now(int(params["now"]))
            return 200, orjson.dumps({"now": self.now_ms})
        if path == "/_replay/faults" and method == "POST":
            self.set_faults(params.get("spec", ""))
            return 200, orjson.dumps({"faults": params.get("spec", "")})
        return 404, _error(404, f"no control route {method} {path}")

    def _candles_reply(
        self, req: _Handler, path: str, params: dict[str, str], entry: dict[str, Any]
    ) -> None:
        with self._lock:
            self._candle_requests += 1
            n = self._candle_requests
            fault = self._faults.get(n - self._fault_offset)
            now = self.now_ms
        entry["n"] = n
        entry["fault"] = fault.value if fault else None
        if fault is Fault.RESET:
            self._log(entry, 0)
            _reset(req)
            return
        if fault is Fault.RATE_LIMIT:
            self._log(entry, 429)
            after = f"{self.retry_after:g}"
            _send(req, 429, _error(429, "too many requests"), {"Retry-After": after})
            return
        if fault is Fault.SERVER_ERROR:
            self._log(entry, 500)
            _send(req, 500, _error(500, "internal server error"))
            return
        if fault is Fault.BUSY:
            self._log(entry, 400)
            _send(req, 400, _error(24201, "PLEASE TRY AGAIN LATER"))
            return
        status, body, rows = self._page(path, params, now, broken=fault is Fault.MALFORMED)
        self._log(entry, status, rows)
        if fault is Fault.SLOW:
            time.sleep(self.slow_seconds)
        if fault is Fault.TRUNCATED:
            body = body[: max(1, len(body) // 2)]
        _send(req, status, body)

    def _page(
        self, path: str, params: dict[str, str], now: int, *, broken: bool = False
    ) -> tuple[int, bytes, int | None]:
        """(status, body, rows) of one candles request, with the real API's semantics."""
        symbol = path[len("/markets/") : -len("/candles")]
        series = self._series.get(symbol)
        if series is None:
            return 400, _error(24101, f"Invalid symbol: {symbol}"), None
        raw_interval = params.get("interval", "")
        try:
            interval = Interval(raw_interval)
        except ValueError:
            return 400, _error(24102, f"Invalid interval: {raw_interval!r}"), None
        if interval is not self.interval:
            return 400, _error(24102, f"this replay serves {self.interval.value} only"), None
        try:
            limit = int(params.get("limit", DEFAULT_LIMIT))
        except ValueError:
            return 400, _error(24104, "Invalid limit"), None
        if not 1 <= limit <= MAX_LIMIT:
            return 400, _error(24104, f"Invalid limit: {limit} (1..{MAX_LIMIT})"), None
        bounds = {}
        for key, code in (("startTime", 24105), ("endTime", 24103)):
            if key in params:
                try:
                    bounds[key] = int(params[key])
                except ValueError:
                    return 400, _error(code, f"Invalid {key}: {params[key]!r}"), None
        end = min(bounds.get("endTime", now), now)
        start = bounds.get("startTime")
        if start is not None and start > end:
            return 200, b"[]", 0
        hi = int(np.searchsorted(series.open_ms, end, side="right"))
        lo = int(np.searchsorted(series.open_ms, start, side="left")) if start is not None else 0
        lo = max(lo, hi - limit)
        rows = series.rows[lo:hi]
        if hi > lo and int(series.open_ms[hi - 1]) + self.interval.ms > now:
            rows = [*rows[:-1], series.partial(hi - 1, now)]
        if broken and rows:
            rows = list(rows)
            mid = len(rows) // 2
            fields = orjson.loads(rows[mid])
            fields[0], fields[1] = str(float(fields[1]) + 1.0), fields[0]  # low above high
            rows[mid] = orjson.dumps(fields)
        return 200, b"[" + b",".join(rows) + b"]", len(rows)


def _error(code: int, message: str) -> bytes:
    return orjson.dumps({"code": code, "message": message})


def _send(req: _Handler, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
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


def _reset(req: _Handler) -> None:
    """Abort the connection with a TCP RST (SO_LINGER 0), as a crashed peer would."""
    with contextlib.suppress(OSError):
        req.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    req.close_connection = True
    with contextlib.suppress(OSError):
        req.connection.close()


def parse_now(text: str | None) -> int | None:
    """``--now`` as epoch ms: an integer (ms) or an ISO date/time (UTC unless it says)."""
    if text is None or text == "":
        return None
    if text.strip().lstrip("-").isdigit():
        return int(text)
    try:
        ts = pd.Timestamp(text)
    except ValueError:
        raise ValueError(f"--now must be epoch ms or an ISO date/time, got {text!r}") from None
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return int(ts.value // 1_000_000)
