"""The typed failures of the Poloniex API, and which error codes mean which kind.

:class:`RetryableError` (rate limit, 5xx, busy, timeouts, broken connections, broken or invalid
pages) is a :class:`~storage.errors.TransientError`; :class:`PermanentError` (the API will never
accept the request) is not retried, and when it rejects a parameter (bad symbol, interval, time or
limit: :class:`BadParameterError`) it is also a :class:`~storage.errors.BadInputError`.
"""

from __future__ import annotations

from storage.errors import BadInputError, TransientError

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


class RetryableError(PoloniexError, TransientError):
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


class BadParameterError(PermanentError, BadInputError):
    """The API rejected a parameter the caller gave: a symbol or interval that does not exist,
    a malformed time or limit (``parameter`` names it)."""


class RetriesExhaustedError(RetryableError):
    """A page that still failed after its retries (the message counts the tries)."""


class FetchInterrupted(PoloniexError):
    """The fetch was told to stop (Ctrl-C, SIGTERM) while it waited or between pages."""


def is_retryable(exc: BaseException | None) -> bool:
    """True for errors worth retrying (everything except :class:`PermanentError`, a stop, bad
    input and an exhausted page)."""
    return exc is not None and not isinstance(
        exc, PermanentError | FetchInterrupted | RetriesExhaustedError | ValueError | TypeError
    )
