"""What a series holds, cheaply: its gaps (missing candles) and its content fingerprint."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd

from storage.candles import parquet
from storage.candles.partitions import committed_months, month_label
from storage.candles.read import open_times
from storage.schema import Interval
from storage.version import DATA_FORMAT_VERSION


def gaps(series: Path, iv: Interval) -> pd.DataFrame:
    """Missing candles strictly inside the stored range: columns start, end (first/last
    missing open_time) and missing (count), one row per hole, oldest first."""
    times = open_times(series)
    step = np.diff(times)
    holes = np.flatnonzero(step > iv.ms)
    start = times[holes] + iv.ms
    end = times[holes + 1] - iv.ms
    return pd.DataFrame(
        {
            "start": pd.to_datetime(start, unit="ms", utc=True).as_unit("ms"),
            "end": pd.to_datetime(end, unit="ms", utc=True).as_unit("ms"),
            "missing": ((end - start) // iv.ms + 1).astype(np.int64),
        }
    )


def fingerprint(series: Path, exchange: str) -> str:
    """Content fingerprint (hex) from partition names, sizes and Parquet footer metadata."""
    parts = []
    for month, path in committed_months(series).items():
        md = parquet.read_metadata(path)
        groups = []
        for g in range(md.num_row_groups):
            rg = md.row_group(g)
            cols = []
            for c in range(rg.num_columns):
                col = rg.column(c)
                st = col.statistics
                stats = (
                    [str(st.min), str(st.max), st.null_count]
                    if st is not None and st.has_min_max
                    else None
                )
                cols.append([col.path_in_schema, col.total_compressed_size, stats])
            groups.append([rg.num_rows, cols])
        parts.append([month_label(month), path.stat().st_size, md.num_rows, groups])
    payload = json.dumps(
        [DATA_FORMAT_VERSION, exchange, series.parent.name, series.name, parts],
        separators=(",", ":"),
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:32]
