"""Where a series' month partitions live: folder names, month keys and the committed files.

Layout (``root`` is ``DataLayout.candles``)::

    root/exchange=poloniex/symbol=BTC_USDT/interval=MINUTE_5/year=2017/month=07/part.parquet
    root/exchange=poloniex/symbol=BTC_USDT/interval=MINUTE_5/.lock
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from storage.errors import BadInputError
from storage.schema import Interval, validate_symbol

PART_NAME = "part.parquet"
LOCK_NAME = ".lock"
DEFAULT_EXCHANGE = "poloniex"

_EXCHANGE_RE = re.compile(r"^[a-z0-9]{1,32}$")
_YEAR_RE = re.compile(r"^year=(\d{4})$")
_MONTH_RE = re.compile(r"^month=(\d{2})$")
_SYMBOL_DIR_RE = re.compile(r"^symbol=(.+)$")
_INTERVAL_DIR_RE = re.compile(r"^interval=(.+)$")

Month = tuple[int, int]  # (year, month)


def validate_exchange(exchange: object) -> str:
    """``exchange`` if it is lower-case letters and digits (it becomes a folder name)."""
    if not isinstance(exchange, str) or not _EXCHANGE_RE.fullmatch(exchange):
        raise BadInputError(f"invalid exchange {exchange!r}: lower-case letters and digits only")
    return exchange


def series_dir(root: Path, exchange: str, symbol: str, interval: str | Interval) -> Path:
    """Folder of one series; validates ``symbol`` and ``interval`` (they become paths)."""
    sym = validate_symbol(symbol)
    iv = Interval.parse(interval)
    iv.ms  # noqa: B018 - raises for intervals without a fixed length (MONTH_1)
    return root / f"exchange={exchange}" / f"symbol={sym}" / f"interval={iv.value}"


def month_path(series: Path, month: Month) -> Path:
    """Path of the ``part.parquet`` file of one month of a series."""
    return series / f"year={month[0]:04d}" / f"month={month[1]:02d}" / PART_NAME


def committed_months(series: Path) -> dict[Month, Path]:
    """Committed month partitions of a series, ascending (temporary files are ignored)."""
    found: dict[Month, Path] = {}
    if not series.is_dir():
        return found
    for ydir in series.iterdir():
        ym = _YEAR_RE.fullmatch(ydir.name)
        if not ym or not ydir.is_dir():
            continue
        for mdir in ydir.iterdir():
            mm = _MONTH_RE.fullmatch(mdir.name)
            if not mm or not 1 <= int(mm.group(1)) <= 12:
                continue
            part = mdir / PART_NAME
            if part.is_file():
                found[(int(ym.group(1)), int(mm.group(1)))] = part
    return dict(sorted(found.items()))


def month_keys(open_ms: np.ndarray) -> np.ndarray:
    """Month index (n,) int64 = year * 12 + (month - 1) of epoch-ms times (n,)."""
    months = np.asarray(open_ms, dtype=np.int64).astype("datetime64[ms]").astype("datetime64[M]")
    return months.astype(np.int64) + 1970 * 12


def month_key(month: Month) -> int:
    """Month index of ``(year, month)`` (the inverse of :func:`month_of_key`)."""
    return month[0] * 12 + month[1] - 1


def month_of_key(key: int) -> Month:
    """(year, month) of a month index."""
    return int(key) // 12, int(key) % 12 + 1


def month_label(month: Month) -> str:
    """``"YYYY-MM"`` of a month."""
    return f"{month[0]:04d}-{month[1]:02d}"


def rebuild_hint(partition: Path) -> str | None:
    """The command that re-fetches the series of a partition file from its first stored month
    (the series folder moved aside first: ingest resumes after the stored end)."""
    series = partition.parent.parent.parent
    sym = _SYMBOL_DIR_RE.fullmatch(series.parent.name)
    iv = _INTERVAL_DIR_RE.fullmatch(series.name)
    if not (sym and iv):
        return None
    first = next(iter(committed_months(series)), None)
    start = f" --start {month_label(first)}-01" if first else ""
    return (
        f"mv {series} {series}.corrupt && cryptoflow ingest --symbol {sym.group(1)} "
        f"--interval {iv.group(1)}{start}"
    )
