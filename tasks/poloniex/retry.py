"""Retrying one page: the policy (tries, delays, jitter), the loop, and Prefect's retry rule."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from storage.settings import DEFAULT_RETRIES, DEFAULT_RETRY_DELAYS_S, PoloniexSettings
from tasks.poloniex.client import PoloniexClient
from tasks.poloniex.errors import FetchInterrupted, RetriesExhaustedError, is_retryable

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """``retries`` more tries of a failing page, ``delays`` seconds before each (the last
    repeating), each jittered by +-``jitter`` (a fraction)."""

    retries: int = DEFAULT_RETRIES
    delays: list[float] = field(default_factory=lambda: list(DEFAULT_RETRY_DELAYS_S))
    jitter: float = 0.5

    @classmethod
    def from_settings(cls, settings: PoloniexSettings) -> RetryPolicy:
        """The policy of the ``CRYPTOFLOW_*`` settings (``retries``, ``retry_delays``)."""
        return cls(settings.retries, list(settings.retry_delays or [0.0]))

    def delay(self, retry: int) -> float:
        """Seconds before retry number ``retry`` (0-based), jittered."""
        base = self.delays[min(retry, len(self.delays) - 1)] if self.delays else 0.0
        return max(0.0, base * random.uniform(1 - self.jitter, 1 + self.jitter))


def with_retries(
    call: Callable[[], T],
    policy: RetryPolicy,
    client: PoloniexClient,
    what: str,
    abandon: threading.Event | None = None,
) -> T:
    """``call()``, retried on retryable errors up to ``policy.retries`` times for this one call.

    Waits through ``client.wait`` (ends at once on ``client.interrupt()``, or with
    :class:`FetchInterrupted` when ``abandon`` is set); the server's own
    Retry-After is held by the client's rate limit. When the tries are spent, raises
    :class:`RetriesExhaustedError` naming ``what`` and the count (a first try that is not
    retried raises its own error).
    """
    retry = 0
    while True:
        try:
            return call()
        except Exception as exc:
            if not is_retryable(exc):
                raise
            if retry >= policy.retries:
                if retry == 0:
                    raise
                raise RetriesExhaustedError(
                    f"{what}: {retry + 1} tries failed, the last with {type(exc).__name__}: {exc}"
                ) from exc
            pause = policy.delay(retry)
            retry += 1
            log.warning("%s: %s; retry %d of %d in %.2g s", what, exc, retry, policy.retries,
                        pause)  # fmt: skip
            _pause(client, pause, abandon)


def _pause(client: PoloniexClient, seconds: float, abandon: threading.Event | None) -> None:
    """Wait ``seconds`` unless the client is interrupted or ``abandon`` is set meanwhile."""
    if abandon is None:
        client.wait(seconds)
        return
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        if abandon.wait(min(left, 0.1)):
            raise FetchInterrupted(f"{seconds:.3g} s retry wait abandoned: another page failed")
        client.wait(0)


def retry_unless_permanent(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect ``retry_condition_fn``: retry every failure except a permanent one."""
    exc = state.data if isinstance(getattr(state, "data", None), BaseException) else None
    if exc is None:
        try:
            state.result(raise_on_failure=True)
        except BaseException as raised:  # noqa: BLE001 - we only classify it
            exc = raised
    return is_retryable(exc)
