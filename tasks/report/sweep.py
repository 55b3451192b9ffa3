"""The regularization sweep table a report draws, found in the run store, and where it came from."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from storage.errors import CorruptStoreError
from storage.layout import DataLayout
from storage.runs import RunStore
from tasks.figures import SWEEP_COLUMNS


@dataclass(frozen=True)
class SweepTable:
    """A sweep table (see ``SWEEP_COLUMNS``), the run that made it and its file."""

    run_id: str
    path: Path
    table: pd.DataFrame


def load_sweep(store: RunStore, run_id: str) -> SweepTable | None:
    """The first of :meth:`RunStore.sweep_tables` with the sweep's columns (the run's own, else
    a sweep on the same window file), else None."""
    for source, path in store.sweep_tables(run_id):
        try:
            df = pd.read_csv(path)
        except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
            raise CorruptStoreError(path, f"unreadable CSV: {e}") from None
        if all(c in df.columns for c in SWEEP_COLUMNS):
            return SweepTable(source, path, df)
    return None


@task(name="load-sweep", cache_policy=NO_CACHE)
def load_sweep_task(data_dir: str, run_id: str) -> Any:
    """The regularization sweep for the report, if any (else None)."""
    return load_sweep(RunStore(DataLayout.at(data_dir).runs), run_id)
