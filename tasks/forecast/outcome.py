"""How a forecast run over several markets ends: every market that could forecast is stored,
then one error names each market that could not (the first's kind, so the CLI's exit code says
what went wrong: 2 bad input such as no champion yet, 3 a corrupt store)."""

from __future__ import annotations

from collections.abc import Mapping

from storage.errors import CryptoflowError


class MarketsFailedError(CryptoflowError, RuntimeError):
    """Some markets of a forecast run could not forecast; the others were stored."""

    def __init__(self, failures: Mapping[str, BaseException], total: int) -> None:
        self.failures = dict(failures)
        first = next(iter(self.failures.values()))
        self.exit_code = getattr(first, "exit_code", CryptoflowError.exit_code)
        lines = [f"{label}: {exc}" for label, exc in self.failures.items()]
        super().__init__(
            f"{len(lines)} of {total} market(s) issued no forecast (the others were stored): "
            + "; ".join(lines)
        )


def raise_failures(failures: Mapping[str, BaseException], total: int) -> None:
    """Nothing when every market forecast; the one market's own error when only one was asked
    for; else :class:`MarketsFailedError` naming each market that failed."""
    if not failures:
        return
    if total == 1:
        raise next(iter(failures.values()))
    raise MarketsFailedError(failures, total)

