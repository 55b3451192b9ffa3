"""Route the project's own stdlib loggers (``storage.*``, ``tasks.*``) into the Prefect run's logs.

Prefect sends only its run loggers to the API (what the UI shows under a flow run); a warning
from the candle store would reach the terminal and nowhere else. :func:`route_project_logs`
adds Prefect's API handler to the project loggers, with a filter that lets a record through only
inside a flow or task run (outside one, e.g. a test or a bench calling a store directly, the
record goes to the usual handlers alone, with no "missing flow run" warning).
"""

from __future__ import annotations

import logging

#: The project's loggers that reach the UI (module loggers below them inherit the handler).
PROJECT_LOGGERS: tuple[str, ...] = ("storage", "tasks")


class _InsideRun(logging.Filter):
    """Pass a record only while a Prefect flow or task run is active in this context."""

    def filter(self, record: logging.LogRecord) -> bool:
        from prefect.context import FlowRunContext, TaskRunContext

        return FlowRunContext.get() is not None or TaskRunContext.get() is not None


_MARK = "_cryptoflow_run_logs"


def _handler() -> logging.Handler:
    from prefect.logging.handlers import APILogHandler

    handler = APILogHandler()
    handler.addFilter(_InsideRun())
    setattr(handler, _MARK, True)
    return handler


def route_project_logs(level: int = logging.INFO) -> None:
    """Attach the API handler to each project logger once (idempotent)."""
    for name in PROJECT_LOGGERS:
        logger = logging.getLogger(name)
        if not any(getattr(h, _MARK, False) for h in logger.handlers):
            logger.addHandler(_handler())
        if logger.level == logging.NOTSET or logger.level > level:
            logger.setLevel(level)
