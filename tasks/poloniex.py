"""Poloniex v3 public market-data client: candles and server time, validated, rate-limited.

``GET {base}/markets/{symbol}/candles?interval=&startTime=&endTime=&limit=`` returns at most 500
rows of 14 fields ``[low, high, open, close, amount (quote), quantity (base), buyTakerAmount,
buyTakerQuantity, tradeCount, ts, weightedAverage, interval, startTime, closeTime]``; prices and
volumes are strings. The API anchors its answer to ``endTime`` (with only ``startTime`` it
returns the *latest* candles), so every request here sends both.

Errors are typed: :class:`RetryableError` (rate limit, 5xx, busy, timeouts, broken connections,
broken or invalid pages) and :class:`PermanentError` (bad symbol, interval or parameters), so a
Prefect ``retry_condition_fn`` can retry the first kind only.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
import orjson
import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from storage.candles import CandleStore
from storage.schema import Interval, cast_candles, empty_candles, validate_symbol

DEFAULT_BASE_URL = "https://api.poloniex.com"
MAX_LIMIT = 500
N_FIELDS = 14

# Row field positions of the v3 candles endpoint.
_LOW, _HIGH, _OPEN, _CLOSE, _AMOUNT, _QUANTITY, _BUY_AMOUNT, _BUY_QTY = range(8)
_TRADES, _TS, _WAVG, _INTERVAL, _START, _CLOSE_TIME = range(8, 14)
_FLOAT_FIELDS = [_LOW, _HIGH, _OPEN, _CLOSE, _AMOUNT, _QUANTITY, _BUY_AMOUNT, _BUY_QTY, _WAVG]
_INT_FIELDS = [_TRADES, _TS, _START, _CLOSE_TIME]

#: Error codes that mean "try again later".
RETRYABLE_CODES: dict[int, str] = {24201: "server busy", 603: "internal timeout"}
#: Error codes that mean the request itself is wrong -> the parameter it names.
PERMANENT_CODES: dict[int, str] = {
    24101: "symbol",
    24102: "interval",
    24103: "endTime",
    24104: "limit",
    24105: "startTime",
    601: "request parameters",
    602: "request parameters",
}


class PoloniexError(Exception):
    """Any failure talking to the Poloniex API."""


class RetryableError(PoloniexError):
    """A failure that may pass on retry; ``retry_after`` is the server's hint in seconds."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PageValidationError(RetryableError):
    """A page that arrived but failed validation (retryable: a re-fetch may be clean)."""


class PermanentError(PoloniexError):
    """A request the API will never accept (bad symbol, interval or parameter): do not retry."""

    def __init__(self, message: str, parameter: str | None = None, code: int | None = None):
        super().__init__(message)
        self.parameter = parameter
        self.code = code


def is_retryable(exc: BaseException | None) -> bool:
    """True for errors worth retrying (everything except :class:`PermanentError` and bad input)."""
    return exc is not None and not isinstance(exc, PermanentError | ValueError | TypeError)


class PoloniexSettings(BaseSettings):
    """Client settings, from ``CRYPTOFLOW_*`` environment variables or arguments."""

    model_config = SettingsConfigDict(env_prefix="CRYPTOFLOW_", extra="ignore")

    poloniex_url: str = Field(
        DEFAULT_BASE_URL, description="Base URL of the Poloniex v3 API (or of `cryptoflow replay`)."
    )
    max_requests_per_second: float = Field(
        20.0,
        ge=0,
        description="Client-side rate limit (token bucket); 0 turns it off. "
        "The API allows about 200/s for public market data.",
    )
    timeout: float = Field(10.0, gt=0, description="Seconds before one HTTP request times out.")
    max_in_flight: int = Field(
        4,
        ge=1,
        le=16,
        description="Page requests of one series in flight at once (still rate-limited).",
    )
    retries: int = Field(4, ge=0, description="Retries of one failed page fetch.")
    retry_delays: list[float] = Field(
        default_factory=lambda: [1.0, 4.0, 15.0, 60.0],
        description="Seconds to wait before each retry (last one repeats), jittered by 50%.",
    )


class TokenBucket:
    """Thread-safe token bucket: at most ``rate`` acquisitions per second, bursts of ``rate``."""

    def __init__(self, rate: float | None) -> None:
        self.rate = float(rate or 0.0)
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
        """Block until one request may be sent."""
        while True:
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
            time.sleep(wait)


def page_ranges(
    start_ms: int, end_ms: int, interval: Interval | str, limit: int = MAX_LIMIT
) -> list[tuple[int, int]]:
    """Inclusive ``(start, end)`` ms windows of at most ``limit`` candles covering the range.

    ``start_ms`` is rounded up to the interval grid; each window starts on the grid.
    """
    step = Interval.parse(interval).ms
    if not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be in 1..{MAX_LIMIT}, got {limit}")
    first = -(-int(start_ms) // step) * step
    span = step * limit
    return [(s, min(s + span - 1, int(end_ms))) for s in range(first, int(end_ms) + 1, span)]


def _fail(message: str) -> PageValidationError:
    return PageValidationError(f"invalid candle page: {message}")


def _describe_payload(rows: Any) -> str:
    if isinstance(rows, dict):
        if {"code", "msg", "data"} <= rows.keys():
            return "a {code, msg, data} envelope (the futures API?), not a v3 spot candle list"
        if {"code", "message"} <= rows.keys():
            return f"an error reply {rows.get('code')}: {rows.get('message')}"
        return f"an object with keys {sorted(rows)[:8]}"
    return f"a {type(rows).__name__}"


def parse_candles(
    rows: Any,
    interval: Interval | str,
    start_ms: int | None = None,
    end_ms: int | None = None,
) -> pd.DataFrame:
    """Validate v3 candle rows (n, 14) and return them in the candle schema (n rows).

    Checks: a list of 14-field rows; finite numbers; int counts and times; the row's interval;
    low <= open, close <= high; volumes >= 0; open times on the grid, inside
    ``[start_ms, end_ms]`` and strictly increasing; ``closeTime == startTime + interval - 1``.
    Raises :class:`PageValidationError` naming the first problem.
    """
    return candles_frame([parse_candle_arrays(rows, interval, start_ms, end_ms)])


def candles_frame(pages: list[dict[str, np.ndarray]]) -> pd.DataFrame:
    """Concatenate parsed pages (each column (n_i,)) into one candle-schema frame (sum n_i rows)."""
    pages = [p for p in pages if len(p["open_time"])]
    if not pages:
        return empty_candles()
    columns = {c: np.concatenate([p[c] for p in pages]) for c in pages[0]}
    return cast_candles(pd.DataFrame(columns, copy=False))


def parse_candle_arrays(
    rows: Any,
    interval: Interval | str,
    start_ms: int | None = None,
    end_ms: int | None = None,
) -> dict[str, np.ndarray]:
    """Validate v3 candle rows (n, 14) into candle-schema columns, each (n,), times as epoch ms.

    The fast path of :func:`parse_candles` (no DataFrame per page); same checks.
    """
    interval = Interval.parse(interval)
    step = interval.ms
    if not isinstance(rows, list):
        raise _fail(f"expected a list of {N_FIELDS}-field rows, got {_describe_payload(rows)}")
    for i, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != N_FIELDS:
            got = f"{len(row)} fields" if isinstance(row, list) else f"a {type(row).__name__}"
            raise _fail(f"row {i} has {got}, expected {N_FIELDS} fields (a legacy-format row?)")
    table = np.array(rows, dtype=object).reshape(len(rows), N_FIELDS)  # (n, 14)
    floats = _as_floats(table[:, _FLOAT_FIELDS])
    ints = _as_ints(table[:, _INT_FIELDS])
    low, high, open_, close, amount, quantity, buy_amount, buy_qty, _wavg = floats.T
    trades, _ts, start, close_time = ints.T
    _check(np.isfinite(floats).all(axis=1), "a number is not finite")
    _check(table[:, _INTERVAL] == interval.value, f"interval is not the requested {interval.value}")
    _check(
        (low <= open_) & (low <= close) & (open_ <= high) & (close <= high),
        "prices out of order (need low <= open, close <= high)",
    )
    _check((amount >= 0) & (quantity >= 0) & (buy_amount >= 0) & (buy_qty >= 0), "negative volume")
    _check(trades >= 0, "negative trade count")
    _check(start % step == 0, f"open time off the {interval.value} grid")
    _check(close_time == start + step - 1, "closeTime is not startTime + interval - 1")
    if start_ms is not None:
        _check(start >= start_ms, f"open time before the requested startTime {start_ms}")
    if end_ms is not None:
        _check(start <= end_ms, f"open time after the requested endTime {end_ms}")
    if len(start) > 1:
        steps = np.diff(start) > 0
        if not steps.all():
            raise _fail(f"row {int(np.argmax(~steps)) + 1}: open times not strictly increasing")
    return {
        "open_time": start,
        "open": open_,
        "high": high,
        "low": low,
        "close": close,
        "volume_base": quantity,
        "volume_quote": amount,
        "trade_count": trades,
        "close_time": close_time,
    }


def _as_floats(block: np.ndarray) -> np.ndarray:
    """Object block (n, k) of numeric strings/numbers -> float64 (n, k)."""
    try:
        return block.astype(np.float64)
    except (ValueError, TypeError, OverflowError) as exc:
        raise _fail(f"a price or volume is not a number ({exc})") from None


def _as_ints(block: np.ndarray) -> np.ndarray:
    """Object block (n, k) of JSON integers -> int64 (n, k); strings, floats and bools rejected."""
    for j in range(block.shape[1]):
        for v in block[:, j]:
            if type(v) is not int:
                raise _fail(f"{v!r} where an integer count or time is expected")
    try:
        return block.astype(np.int64)
    except OverflowError as exc:
        raise _fail(f"an integer is out of range ({exc})") from None


def _check(ok: np.ndarray, what: str) -> None:
    if not ok.all():
        raise _fail(f"row {int(np.argmax(~ok))}: {what}")


def _retry_after(response: httpx.Response) -> float | None:
    raw = response.headers.get("Retry-After")
    if raw is None:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        return None


class PoloniexClient:
    """Poloniex v3 market data over ONE keep-alive ``httpx.Client``, with a client-side rate limit.

    Thread-safe: several symbols may fetch through one client at once.
    """

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        *,
        timeout: float = 10.0,
        max_requests_per_second: float | None = 20.0,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.requests_sent = 0
        self._bucket = TokenBucket(max_requests_per_second)
        self._http = httpx.Client(
            base_url=self.base_url,
            timeout=timeout,
            headers={"Accept": "application/json", "User-Agent": "cryptoflow"},
            limits=httpx.Limits(max_keepalive_connections=8, keepalive_expiry=30.0),
        )

    @classmethod
    def from_settings(cls, settings: PoloniexSettings | None = None) -> PoloniexClient:
        """A client configured from :class:`PoloniexSettings` (environment by default)."""
        s = settings or PoloniexSettings()
        return cls(
            s.poloniex_url, timeout=s.timeout, max_requests_per_second=s.max_requests_per_second
        )

    def close(self) -> None:
        """Close the keep-alive connections."""
        self._http.close()

    def __enter__(self) -> PoloniexClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        """GET ``path`` and return the decoded JSON body, or raise a typed error."""
        self._bucket.acquire()
        self.requests_sent += 1
        where = f"GET {self.base_url}{path}"
        try:
            response = self._http.get(path, params=params)
        except httpx.TimeoutException as exc:
            raise RetryableError(f"{where} timed out after {self.timeout}s ({exc!r})") from exc
        except httpx.TransportError as exc:  # connect refused/reset, broken or truncated body
            raise RetryableError(f"{where} failed: {exc!r}") from exc
        body: Any = None
        try:
            body = orjson.loads(response.content)
        except orjson.JSONDecodeError as exc:
            if response.status_code == 200:
                raise RetryableError(f"{where} returned invalid or truncated JSON ({exc})") from exc
        if response.status_code == 200:
            return body
        self._raise_for_error(where, response, body)

    def _raise_for_error(self, where: str, response: httpx.Response, body: Any) -> None:
        status = response.status_code
        code = body.get("code") if isinstance(body, dict) else None
        message = body.get("message") if isinstance(body, dict) else None
        detail = f"{where} -> HTTP {status}" + (f", code {code}: {message}" if code else "")
        if status == 429:
            retry_after = _retry_after(response)
            if retry_after:
                self._bucket.pause_until(time.monotonic() + retry_after)
            raise RetryableError(f"{detail} (rate limited)", retry_after=retry_after)
        if isinstance(code, int) and code in RETRYABLE_CODES:
            raise RetryableError(f"{detail} ({RETRYABLE_CODES[code]})", _retry_after(response))
        if isinstance(code, int) and code in PERMANENT_CODES:
            parameter = PERMANENT_CODES[code]
            raise PermanentError(
                f"Poloniex rejected the {parameter}: {message or 'invalid'} ({detail})",
                parameter=parameter,
                code=code,
            )
        if status >= 500:
            raise RetryableError(f"{detail} (server error)", _retry_after(response))
        raise PermanentError(f"Poloniex rejected the request: {detail}", code=code)

    def server_time_ms(self) -> int:
        """Server "now" in epoch ms (``GET /timestamp`` -> ``{"serverTime": ms}``)."""
        body = self._get("/timestamp")
        value = body.get("serverTime") if isinstance(body, dict) else None
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise RetryableError(f"GET {self.base_url}/timestamp returned no serverTime: {body!r}")
        return value

    def fetch_candles(
        self,
        symbol: str,
        interval: Interval | str,
        start_ms: int,
        end_ms: int,
        limit: int = MAX_LIMIT,
    ) -> pd.DataFrame:
        """Candles with open time in ``[start_ms, end_ms]`` (n <= limit rows, candle schema)."""
        return candles_frame([self.fetch_candle_arrays(symbol, interval, start_ms, end_ms, limit)])

    def fetch_candle_arrays(
        self,
        symbol: str,
        interval: Interval | str,
        start_ms: int,
        end_ms: int,
        limit: int = MAX_LIMIT,
    ) -> dict[str, np.ndarray]:
        """One validated page as columns (n,) with times in epoch ms (see :func:`candles_frame`)."""
        symbol = validate_symbol(symbol)
        interval = Interval.parse(interval)
        if not 1 <= limit <= MAX_LIMIT:
            raise ValueError(f"limit must be in 1..{MAX_LIMIT}, got {limit}")
        if start_ms > end_ms:
            raise ValueError(f"startTime {start_ms} is after endTime {end_ms}")
        params = {
            "interval": interval.value,
            "startTime": int(start_ms),
            "endTime": int(end_ms),
            "limit": int(limit),
        }
        rows = self._get(f"/markets/{symbol}/candles", params)
        try:
            return parse_candle_arrays(rows, interval, start_ms, end_ms)
        except PageValidationError as exc:
            raise PageValidationError(
                f"{symbol} {interval.value} [{start_ms}, {end_ms}]: {exc}"
            ) from exc


# ----------------------------------------------------------------------------- planning


def month_starts_ms(start_ms: int, end_ms: int) -> list[int]:
    """Epoch ms of each UTC month start strictly after ``start_ms`` and not after ``end_ms``."""
    first = np.datetime64(int(start_ms), "ms").astype("datetime64[M]") + 1
    last = np.datetime64(int(end_ms), "ms").astype("datetime64[M]")
    if last < first:
        return []
    months = np.arange(first, last + 1).astype("datetime64[ms]").astype(np.int64)
    return [int(m) for m in months]


def plan_batches(
    start_ms: int,
    end_ms: int,
    interval: Interval | str,
    limit: int = MAX_LIMIT,
    min_candles: int = 5_000,
) -> list[list[tuple[int, int]]]:
    """Page windows of ``[start_ms, end_ms]`` grouped into commit batches of whole UTC months.

    No page crosses a month boundary, so a batch's append rewrites only its own months; a batch
    spans as many whole months as it takes to hold ``min_candles`` (one month at 5 minutes,
    several at an hour). Returns batches (b,) of pages (p_i,) of inclusive ``(start, end)`` ms.
    """
    iv = Interval.parse(interval)
    if end_ms < start_ms:
        return []
    edges = [int(start_ms), *month_starts_ms(start_ms, end_ms), int(end_ms) + 1]
    batches: list[list[tuple[int, int]]] = []
    current: list[tuple[int, int]] = []
    span = 0
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        pages = page_ranges(lo, hi - 1, iv, limit) if hi - 1 >= lo else []
        current.extend(pages)
        span += (hi - lo) // iv.ms
        if span >= min_candles:
            batches.append(current)
            current, span = [], 0
    if current:
        batches.append(current)
    return [b for b in batches if b]


# ----------------------------------------------------------------------------- Prefect tasks


class PageBatch:
    """Pages of one commit batch and the ones fetched so far (kept across Prefect retries).

    A plain class on purpose: Prefect hands the same object to every retry of
    :func:`fetch_pages`, so a retry resumes at the page that failed instead of starting over.
    """

    def __init__(self, pages: list[tuple[int, int]]) -> None:
        self.pages = list(pages)
        self.fetched: list[dict[str, np.ndarray]] = []

    @property
    def remaining(self) -> list[tuple[int, int]]:
        """Pages not fetched yet, in order."""
        return self.pages[len(self.fetched) :]

    def frame(self) -> pd.DataFrame:
        """The fetched pages as one candle-schema frame (n rows)."""
        return candles_frame(self.fetched)


def retry_unless_permanent(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect ``retry_condition_fn``: retry every failure except a :class:`PermanentError`."""
    exc = state.data if isinstance(getattr(state, "data", None), BaseException) else None
    if exc is None:
        try:
            state.result(raise_on_failure=True)
        except BaseException as raised:  # noqa: BLE001 - we only classify it
            exc = raised
    return is_retryable(exc)


@task(
    name="fetch-pages",
    retries=4,
    retry_delay_seconds=[1.0, 4.0, 15.0, 60.0],
    retry_jitter_factor=0.5,
    retry_condition_fn=retry_unless_permanent,
    cache_policy=NO_CACHE,
    persist_result=False,
)
def fetch_pages(
    client: PoloniexClient,
    symbol: str,
    interval: Interval,
    batch: PageBatch,
    on_page: Callable[[str, int], None] | None = None,
    in_flight: int = 1,
) -> int:
    """Fetch the batch's remaining pages, in order, into ``batch``; return candles fetched.

    Up to ``in_flight`` requests run at once (over the one keep-alive client, still under its
    rate limit) to hide a remote API's latency (on loopback one at a time is as fast, see
    ``bench/ingest.py``); pages are kept in order, and on the
    first failure nothing after the failed page is kept. The retried unit is therefore the page
    that failed: earlier pages of the batch stay in ``batch`` across Prefect retries.
    """
    if in_flight <= 1:
        for start_ms, end_ms in batch.remaining:
            page = client.fetch_candle_arrays(symbol, interval, start_ms, end_ms)
            batch.fetched.append(page)
            if on_page is not None:
                on_page(symbol, len(page["open_time"]))
        return sum(len(p["open_time"]) for p in batch.fetched)
    remaining = iter(batch.remaining)
    with ThreadPoolExecutor(max(1, in_flight), thread_name_prefix="fetch-page") as pool:
        pending: deque[Future[dict[str, np.ndarray]]] = deque()

        def fill() -> None:
            while len(pending) < max(1, in_flight):
                window = next(remaining, None)
                if window is None:
                    return
                pending.append(pool.submit(client.fetch_candle_arrays, symbol, interval, *window))

        fill()
        while pending:
            try:
                page = pending.popleft().result()
            except BaseException:
                for later in pending:
                    later.cancel()
                raise
            batch.fetched.append(page)
            if on_page is not None:
                on_page(symbol, len(page["open_time"]))
            fill()
    return sum(len(p["open_time"]) for p in batch.fetched)


@dataclass
class SeriesOutcome:
    """What one ingest of one series did (small: goes into the flow result and the artifact)."""

    symbol: str
    interval: str
    added: int = 0
    first_new: str | None = None
    last_new: str | None = None
    stored_until: str | None = None
    resumed_from: str | None = None
    pages: int = 0
    batches_committed: int = 0
    gaps: int = 0
    missing: int = 0
    error: str | None = None

    @property
    def failed(self) -> bool:
        return self.error is not None


def _iso(ms: int | pd.Timestamp | None) -> str | None:
    if ms is None:
        return None
    ts = ms if isinstance(ms, pd.Timestamp) else pd.Timestamp(int(ms), unit="ms", tz="UTC")
    return ts.isoformat()


def resume_start_ms(
    last_open: pd.Timestamp | None, interval: Interval, start_ms: int | None, default_ms: int
) -> int:
    """Where to start fetching: after the stored end (not before ``start_ms``), else ``start_ms``,
    else ``default_ms`` (all epoch ms)."""
    if last_open is not None:
        after = int(last_open.value // 1_000_000) + interval.ms
        return after if start_ms is None else max(after, int(start_ms))
    return default_ms if start_ms is None else int(start_ms)


@task(name="ingest-series", cache_policy=NO_CACHE, persist_result=False)
def ingest_series(
    client: PoloniexClient,
    store: CandleStore,
    symbol: str,
    interval: Interval,
    server_now_ms: int,
    start_ms: int | None,
    end_ms: int | None,
    default_start_ms: int,
    fetch: Any = None,
    on_page: Callable[[str, int], None] | None = None,
    on_plan: Callable[[str, int], None] | None = None,
    in_flight: int = 1,
) -> SeriesOutcome:
    """Fetch one series from the stored end to ``end_ms`` (or now) and commit it batch by batch.

    Holds the store's per-series lock throughout. Each batch (whole months, see
    :func:`plan_batches`) is fetched by ``fetch`` (:func:`fetch_pages` with the run's retry
    options) and committed with one ``store.append`` before the next starts; when a fetch fails
    for good, the pages it did fetch are committed first, so a re-run resumes right there.
    """
    fetch = fetch or fetch_pages
    outcome = SeriesOutcome(symbol, interval.value)
    with store.lock(symbol, interval):
        last = store.last_open_time(symbol, interval)
        begin = resume_start_ms(last, interval, start_ms, default_start_ms)
        stop = min(server_now_ms, end_ms if end_ms is not None else server_now_ms)
        batches = plan_batches(begin, stop, interval)
        outcome.resumed_from = _iso(begin)
        if on_plan is not None:
            on_plan(symbol, sum(len(b) for b in batches))
        for pages in batches:
            batch = PageBatch(pages)
            try:
                fetch(client, symbol, interval, batch, on_page, in_flight)
            except Exception as exc:
                outcome.error = f"{type(exc).__name__}: {exc}"
            _commit(store, symbol, interval, batch, server_now_ms, outcome)
            if outcome.failed:
                break
        final = store.last_open_time(symbol, interval)
        outcome.stored_until = _iso(final)
        gaps = store.gaps(symbol, interval)
        outcome.gaps, outcome.missing = len(gaps), int(gaps["missing"].sum())
    return outcome


def _commit(
    store: CandleStore,
    symbol: str,
    interval: Interval,
    batch: PageBatch,
    server_now_ms: int,
    outcome: SeriesOutcome,
) -> None:
    """Append the fetched pages of ``batch`` and account for them in ``outcome``."""
    outcome.pages += len(batch.fetched)
    if not batch.fetched:
        return
    result = store.append(symbol, interval, batch.frame(), server_now_ms=server_now_ms)
    outcome.batches_committed += 1
    outcome.added += result.added
    if result.first_new is not None and outcome.first_new is None:
        outcome.first_new = _iso(result.first_new)
    if result.last_new is not None:
        outcome.last_new = _iso(result.last_new)
