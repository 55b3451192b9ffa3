"""The fault matrix: a backfill through the replay with every fault kind, checked candle by
candle against the source (used by ``bench/fault_matrix.py`` and its smaller test)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cryptoflow.replay import ReplayServer
from cryptoflow.replay.faults import Fault
from storage.candles import CandleStore
from storage.layout import DataLayout
from storage.schema import to_ms

#: Every fault kind the replay injects, in the order the plan cycles through them.
KINDS = [f.value for f in Fault]
#: Client settings of a matrix run: short timeout (the ``slow`` fault outlasts it), fast retries.
SETTINGS = {"timeout": 0.5, "retries": 3, "retry_delays": [0.01], "max_requests_per_second": 0,
            "progress": False}  # fmt: skip


@dataclass
class MatrixResult:
    """What a matrix run did, and how the store compares with the source."""

    pages: int
    requests: int
    faults: dict[str, int]  # kind -> times injected
    lost: int  # source candles missing from the store
    duplicated: int  # stored open times that occur more than once
    changed: int  # stored candles that differ from the source candle of that time
    extra: int  # stored candles the source does not have
    wall_s: float

    @property
    def exact(self) -> bool:
        return not (self.lost or self.duplicated or self.changed or self.extra)


def fault_plan(n_pages: int, spacing: int) -> str:
    """Every ``spacing``-th candle request (``spacing`` >= 2, so each retry or second ask is
    clean) faulted, cycling through every kind, only numbers below ``n_pages``: each fault adds
    a request, so the last page (whose missing tail the next run would fetch) is never hit."""
    numbers = range(max(2, spacing), n_pages, max(2, spacing))
    return ",".join(f"{n}:{KINDS[i % len(KINDS)]}" for i, n in enumerate(numbers))


def compare(stored: pd.DataFrame, source: pd.DataFrame) -> tuple[int, int, int, int]:
    """(lost, duplicated, changed, extra) of ``stored`` against ``source``, candle by candle."""
    got, want = to_ms(stored["open_time"]), to_ms(source["open_time"])
    duplicated = int(len(got) - len(np.unique(got)))
    lost = int((~np.isin(want, got)).sum())
    extra = int((~np.isin(got, want)).sum())
    both = pd.merge(stored.drop_duplicates("open_time"), source, on="open_time",
                    suffixes=("", "_src"))  # fmt: skip
    changed = np.zeros(len(both), dtype=bool)
    for col in stored.columns.drop("open_time"):
        changed |= both[col].to_numpy() != both[f"{col}_src"].to_numpy()
    return lost, duplicated, int(changed.sum()), extra


def run_matrix(
    source: pd.DataFrame,
    data_dir: Path,
    *,
    spacing: int = 2,
    in_flight: int = 1,
    limit_s: float = 600.0,
    interval: str = "MINUTE_5",
) -> MatrixResult:
    """Backfill ``source`` through a replay faulting every ``spacing``-th request; compare."""
    from flows.ingest import ingest

    n_pages = -(-len(source) // 500) + 1
    plan = fault_plan(n_pages, spacing)
    first = int(to_ms(source["open_time"])[0])
    box: dict[str, object] = {}
    with ReplayServer(source, interval=interval, faults=plan, retry_after=0.2,
                      slow_seconds=1.0) as srv:  # fmt: skip
        began = time.monotonic()

        def backfill() -> None:
            try:
                box["result"] = ingest(
                    interval=interval, start=first, base_url=srv.url, data_dir=str(data_dir),
                    max_in_flight=in_flight, **SETTINGS,
                )  # fmt: skip
            except BaseException as exc:  # noqa: BLE001 - reported below
                box["error"] = exc

        worker = threading.Thread(target=backfill, name="fault-matrix", daemon=True)
        worker.start()
        worker.join(limit_s)
        wall = time.monotonic() - began
        if worker.is_alive():
            raise TimeoutError(f"the faulted backfill did not finish within {limit_s:g} s")
        if "error" in box:
            raise box["error"]  # type: ignore[misc]
        log = srv.candle_requests()
    faults: dict[str, int] = {}
    for entry in log:
        if entry["fault"]:
            faults[entry["fault"]] = faults.get(entry["fault"], 0) + 1
    stored = CandleStore(DataLayout.at(data_dir).candles).load("BTC_USDT", interval)
    lost, duplicated, changed, extra = compare(stored, source.reset_index(drop=True))
    return MatrixResult(n_pages, len(log), faults, lost, duplicated, changed, extra, wall)
