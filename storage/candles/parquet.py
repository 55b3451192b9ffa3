"""Parquet I/O of one partition file: the exact schema, the encodings, read, write and footer.

A file that cannot be read or has another schema raises :class:`CorruptStoreError` naming it.
Module functions (called as ``parquet.write_table``) so tests can inject a failure into a write.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from storage.candles.partitions import rebuild_hint
from storage.errors import CorruptStoreError
from storage.schema import CANDLE_COLUMNS, CANDLE_DTYPES, to_epoch_ms
from storage.version import DATA_FORMAT_VERSION

COMPRESSION = "zstd"
# Plain encodings chosen for speed and size (a 44,640-row month: ~9 ms to write, ~1 MB):
# byte-stream-split floats and delta-packed integers, no dictionaries (prices rarely repeat).
_COLUMN_ENCODING = {
    "open": "BYTE_STREAM_SPLIT",
    "high": "BYTE_STREAM_SPLIT",
    "low": "BYTE_STREAM_SPLIT",
    "close": "BYTE_STREAM_SPLIT",
    "volume_base": "BYTE_STREAM_SPLIT",
    "volume_quote": "BYTE_STREAM_SPLIT",
    "open_time": "DELTA_BINARY_PACKED",
    "trade_count": "DELTA_BINARY_PACKED",
    "close_time": "DELTA_BINARY_PACKED",
}
_ARROW_TYPES: dict[str, pa.DataType] = {
    "datetime64[ms, UTC]": pa.timestamp("ms", tz="UTC"),
    "float64": pa.float64(),
    "int64": pa.int64(),
}
#: The Parquet schema of every partition file (exact, including ``timestamp[ms, tz=UTC]``).
ARROW_SCHEMA: pa.Schema = pa.schema(
    [pa.field(c, _ARROW_TYPES[d], nullable=False) for c, d in CANDLE_DTYPES.items()]
)
FILE_METADATA = {b"cryptoflow.candles.format": DATA_FORMAT_VERSION.encode()}


def corrupt(path: Path, problem: str) -> CorruptStoreError:
    """The error for an unreadable or invalid partition file (names it and how to rebuild)."""
    return CorruptStoreError(path, problem, rebuild=rebuild_hint(path))


def write_table(table: pa.Table, path: Path) -> None:
    """Write one partition table to ``path`` (a temporary file)."""
    pq.write_table(
        table,
        path,
        compression=COMPRESSION,
        use_dictionary=False,
        column_encoding=_COLUMN_ENCODING,
        write_statistics=True,
        sorting_columns=[pq.SortingColumn(0)],
    )


def read_partition(path: Path, columns: list[str] | None = None) -> pa.Table:
    """Read one partition file, checking its schema; :class:`CorruptStoreError` naming it."""
    try:
        table = pq.read_table(path, columns=columns)
    except (OSError, pa.ArrowException) as exc:
        raise corrupt(path, f"unreadable candle partition: {exc}") from exc
    expected = (
        ARROW_SCHEMA if columns is None else pa.schema([ARROW_SCHEMA.field(c) for c in columns])
    )
    if not table.schema.equals(expected, check_metadata=False):
        # nullability differences are harmless; compare names and types
        if [(f.name, f.type) for f in table.schema] != [(f.name, f.type) for f in expected]:
            raise corrupt(path, f"candle partition has schema {table.schema}, not the store's")
    return table


def read_open_times(path: Path) -> pa.ChunkedArray:
    """The ``open_time`` column of one partition as int64 ms."""
    return read_partition(path, ["open_time"]).column("open_time").cast(pa.int64())


def read_metadata(path: Path) -> pq.FileMetaData:
    """Parquet footer of one partition (no data pages read); :class:`CorruptStoreError`."""
    try:
        return pq.read_metadata(path)
    except (OSError, pa.ArrowException) as exc:
        raise corrupt(path, f"unreadable candle partition: {exc}") from exc


def frame_to_table(df: pd.DataFrame) -> pa.Table:
    """Arrow table (n rows) in the partition schema from a cast candle frame."""
    if df.empty:
        arrays = [pa.array([], type=f.type) for f in ARROW_SCHEMA]
    else:
        arrays = [
            pa.Array.from_pandas(df[c], type=ARROW_SCHEMA.field(c).type) for c in CANDLE_COLUMNS
        ]
    return pa.Table.from_arrays(arrays, schema=ARROW_SCHEMA.with_metadata(FILE_METADATA))


def max_open_time_ms(path: Path) -> int | None:
    """Largest open_time (ms) in one partition, from row-group statistics when present."""
    md = read_metadata(path)
    if md.num_rows == 0:
        return None
    col = md.schema.names.index("open_time")
    best: int | None = None
    for g in range(md.num_row_groups):
        rg = md.row_group(g)
        if rg.num_rows == 0:
            continue
        st = rg.column(col).statistics
        if st is None or not st.has_min_max:
            return int(pc.max(read_open_times(path)).as_py())
        value = to_epoch_ms(pd.Timestamp(st.max))
        best = value if best is None else max(best, value)
    return best
