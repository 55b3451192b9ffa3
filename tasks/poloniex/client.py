"""``PoloniexClient``: server time and one validated candle page per request, over one keep-alive
``httpx.Client`` under the client-side rate limit, with every failure typed."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
import numpy as np
import orjson
import pandas as pd

from storage.errors import BadInputError
from storage.schema import Interval, validate_symbol
from storage.settings import (
    DEFAULT_BASE_URL,
    DEFAULT_MAX_REQUESTS_PER_SECOND,
    DEFAULT_MAX_RETRY_AFTER_S,
    DEFAULT_TIMEOUT_S,
    PoloniexSettings,
)
from tasks.poloniex.errors import (
    PERMANENT_CODES,
    RETRYABLE_CODES,
    BadParameterError,
    FetchInterrupted,
    PageValidationError,
    PermanentError,
    RetryableError,
)
from tasks.poloniex.pages import MAX_LIMIT, candles_frame, check_limit, parse_candle_arrays
from tasks.poloniex.ratelimit import TokenBucket


def check_base_url(url: str, name: str = "base_url") -> str:
    """``url`` if it is an http(s) URL, else :class:`BadInputError` naming ``name``."""
    if not url.startswith(("http://", "https://")):
        raise BadInputError(f"{name}: must start with http:// or https://, got {url!r}")
    return url


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

    Thread-safe: several symbols may fetch through one client at once. A server's Retry-After
    is honoured up to ``max_retry_after`` seconds; :meth:`interrupt` ends every wait at once
    (the waiting call raises :class:`FetchInterrupted`) and refuses further requests.
    """

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        *,
        timeout: float = DEFAULT_TIMEOUT_S,
        max_requests_per_second: float | None = DEFAULT_MAX_REQUESTS_PER_SECOND,
        max_retry_after: float = DEFAULT_MAX_RETRY_AFTER_S,
    ) -> None:
        self.base_url = check_base_url(base_url).rstrip("/")
        self.timeout = timeout
        self.max_retry_after = float(max_retry_after)
        self.requests_sent = 0
        self.stop = threading.Event()
        self._bucket = TokenBucket(max_requests_per_second, self.stop)
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
            s.poloniex_url,
            timeout=s.timeout,
            max_requests_per_second=s.max_requests_per_second,
            max_retry_after=s.max_retry_after,
        )

    def interrupt(self) -> None:
        """Stop: every wait of this client ends now, and no further request is sent."""
        self.stop.set()

    def wait(self, seconds: float) -> None:
        """Sleep ``seconds``, or raise :class:`FetchInterrupted` as soon as :meth:`interrupt`."""
        if self.stop.wait(max(0.0, seconds)):
            raise FetchInterrupted(f"stopped during a {seconds:.3g} s wait before a retry")

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
            retry_after, note = self._honoured_retry_after(response)
            if retry_after:
                self._bucket.pause_until(time.monotonic() + retry_after)
            raise RetryableError(f"{detail} (rate limited){note}", retry_after=retry_after)
        if isinstance(code, int) and code in RETRYABLE_CODES:
            retry_after, note = self._honoured_retry_after(response)
            raise RetryableError(f"{detail} ({RETRYABLE_CODES[code]}){note}", retry_after)
        if isinstance(code, int) and code in PERMANENT_CODES:
            parameter = PERMANENT_CODES[code]
            raise BadParameterError(
                f"Poloniex rejected the {parameter}: {message or 'invalid'} ({detail})",
                parameter=parameter,
                code=code,
            )
        if status >= 500:
            retry_after, note = self._honoured_retry_after(response)
            raise RetryableError(f"{detail} (server error){note}", retry_after)
        raise PermanentError(f"Poloniex rejected the request: {detail}", code=code)

    def _honoured_retry_after(self, response: httpx.Response) -> tuple[float | None, str]:
        """The server's Retry-After if within the cap, else None and a note saying why."""
        asked = _retry_after(response)
        if asked is None or asked <= self.max_retry_after:
            return asked, ""
        return None, (
            f"; the server asks to wait {asked:g} s (Retry-After), more than the "
            f"{self.max_retry_after:g} s cap (CRYPTOFLOW_MAX_RETRY_AFTER): this try fails, "
            "the retry waits its own delay"
        )

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
        """Closed candles with open time in ``[start_ms, end_ms]`` (n <= limit rows, schema)."""
        return candles_frame([self.fetch_candle_arrays(symbol, interval, start_ms, end_ms, limit)])

    def fetch_candle_arrays(
        self,
        symbol: str,
        interval: Interval | str,
        start_ms: int,
        end_ms: int,
        limit: int = MAX_LIMIT,
    ) -> dict[str, np.ndarray]:
        """One validated page as columns (n,) with times in epoch ms (see :func:`candles_frame`);
        rows still open by their own ``ts`` are left out."""
        symbol = validate_symbol(symbol)
        interval = Interval.parse(interval)
        check_limit(limit)
        if start_ms > end_ms:
            raise BadInputError(f"startTime {start_ms} is after endTime {end_ms}")
        params = {
            "interval": interval.value,
            "startTime": int(start_ms),
            "endTime": int(end_ms),
            "limit": int(limit),
        }
        rows = self._get(f"/markets/{symbol}/candles", params)
        try:
            return parse_candle_arrays(rows, interval, start_ms, end_ms, drop_open=True)
        except PageValidationError as exc:
            raise PageValidationError(
                f"{symbol} {interval.value} [{start_ms}, {end_ms}]: {exc}"
            ) from exc
