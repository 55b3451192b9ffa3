"""The three kinds of failure every part raises, and the exit code the CLI gives each.

- :class:`BadInputError` — the caller typed it wrong (a parameter, a symbol, a missing file they
  named). Raised before anything is written; never retried; exit 2. Subclasses ``ValueError`` so
  pydantic validators and older callers that catch ``ValueError`` keep working.
- :class:`CorruptStoreError` — a stored file cannot be read or fails validation. Names the file
  and the command that rebuilds it; never retried; exit 3.
- :class:`TransientError` — a remote failure that may pass (network, 5xx, 429, a bad page).
  Retried by the task that makes the call; once retries are spent, exit 4.

Anything else is a bug: exit 1 with a traceback.
"""

from __future__ import annotations

from os import PathLike

EXIT_OK = 0
EXIT_BUG = 1
EXIT_BAD_INPUT = 2
EXIT_CORRUPT_STORE = 3
EXIT_TRANSIENT = 4
EXIT_INTERRUPTED = 130


class CryptoflowError(Exception):
    """Base of the project's own errors; ``exit_code`` is what the CLI exits with."""

    exit_code = EXIT_BUG


class BadInputError(CryptoflowError, ValueError):
    """A parameter, option or named file the caller gave is not acceptable (exit 2)."""

    exit_code = EXIT_BAD_INPUT


class CorruptStoreError(CryptoflowError, RuntimeError):
    """A stored file is unreadable or invalid; names it and the command that rebuilds it.

    Exit 3.
    """

    exit_code = EXIT_CORRUPT_STORE

    def __init__(
        self, path: str | PathLike[str], problem: str, rebuild: str | None = None
    ) -> None:
        self.path = str(path)
        self.problem = problem
        self.rebuild = rebuild
        message = f"{self.path}: {problem}"
        if rebuild:
            message += f"; rebuild it with `{rebuild}`"
        super().__init__(message)


class TransientError(CryptoflowError, RuntimeError):
    """A remote failure that may pass; retried where it is raised.

    Exit 4 once retries are spent.
    """

    exit_code = EXIT_TRANSIENT


def exit_code_for(exc: BaseException) -> int:
    """The CLI exit code for ``exc`` (``ValueError`` counts as bad input)."""
    if isinstance(exc, CryptoflowError):
        return exc.exit_code
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    if isinstance(exc, ValueError):
        return EXIT_BAD_INPUT
    return EXIT_BUG
