"""The forecast tasks retry I/O only: a busy disk or a held lock, never bad input, a corrupt
store or a missing file."""

from __future__ import annotations

import pytest
from prefect.states import Failed

from storage.candles import StoreLockedError
from storage.errors import BadInputError, CorruptStoreError
from tasks.forecast.task import retry_on_io


@pytest.mark.parametrize(
    ("exc", "retried"),
    [
        (OSError("input/output error"), True),
        (StoreLockedError("forecasts of BTC_USDT MINUTE_5 locked"), True),
        (FileNotFoundError("gone"), False),
        (BadInputError("no honest champion"), False),
        (CorruptStoreError("part.parquet", "unreadable"), False),
        (RuntimeError("a bug"), False),
    ],
)
def test_retry_on_io(exc, retried):
    assert retry_on_io(None, None, Failed(data=exc)) is retried
