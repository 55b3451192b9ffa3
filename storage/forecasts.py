"""The forecast store: the champion's (and persistence's) live forecasts, Hive-partitioned
Parquet beside the candle store, one file per (series, month of issue), written atomically.

Layout (``root`` is ``DataLayout.forecasts``)::

    root/exchange=poloniex/symbol=BTC_USDT/interval=MINUTE_5/year=2026/month=12/part.parquet

One row per (``model``, ``issued_at``, ``step``): ``issued_at`` is the open time of the last input
candle (UTC, ms), ``step`` 1..K, ``target_time`` the open time of the forecast candle,
``predicted_close`` (float64, price units), the champion's ``run_id`` and ``epoch`` (null for
persistence) and ``dataset_id`` (the window spec's id). Writing is idempotent: rows of an
(``model``, ``issued_at``) already stored are never written again. A month's file is rewritten
(temporary name, then rename) under the series' ``flock``, so a reader never sees half a file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from storage.atomic import atomic_path
from storage.candles import partitions
from storage.candles.locking import series_lock
from storage.errors import BadInputError, CorruptStoreError
from storage.frames import arrow_table, cast_frame
from storage.schema import Interval, to_epoch_ms, validate_symbol

#: Column -> dtype of a stored forecast row (``epoch`` is null for baselines).
FORECAST_DTYPES: dict[str, str] = {
    "model": "object",
    "issued_at": "datetime64[ms, UTC]",
    "step": "int64",
    "target_time": "datetime64[ms, UTC]",
    "predicted_close": "float64",
    "run_id": "object",
    "epoch": "Int64",
    "dataset_id": "object",
}
FORECAST_COLUMNS: tuple[str, ...] = tuple(FORECAST_DTYPES)
#: The key of an issue: one model's forecast made at one candle.
ISSUE_KEY: tuple[str, str] = ("model", "issued_at")
ARROW_SCHEMA: pa.Schema = pa.schema(
    [
        pa.field("model", pa.string(), nullable=False),
        pa.field("issued_at", pa.timestamp("ms", tz="UTC"), nullable=False),
        pa.field("step", pa.int64(), nullable=False),
        pa.field("target_time", pa.timestamp("ms", tz="UTC"), nullable=False),
        pa.field("predicted_close", pa.float64(), nullable=False),
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("epoch", pa.int64(), nullable=True),
        pa.field("dataset_id", pa.string(), nullable=False),
    ]
)
COMPRESSION = "zstd"
#: Rows per Parquet row group: rows are sorted by issue time, so a read ``since`` an issue
#: decodes only the row groups from there on (scoring reads O(new), not O(month)).
ROW_GROUP_ROWS = 8192
#: A forecast file is rebuilt by issuing forecasts again (earlier issues are not recoverable).
REBUILD = "mv {path} {path}.corrupt && cryptoflow forecast --symbol {symbol} --interval {interval}"


def empty_forecasts() -> pd.DataFrame:
    """An empty, typed forecast frame (0, 8)."""
    return cast_forecasts(pd.DataFrame({c: [] for c in FORECAST_COLUMNS}))


def cast_forecasts(df: pd.DataFrame) -> pd.DataFrame:
    """``df``'s forecast columns, in order, with the store's dtypes."""
    return cast_frame(df, FORECAST_DTYPES, "forecast")


@dataclass(frozen=True)
class ForecastWrite:
    """What :meth:`ForecastStore.write` did: the rows added (0 when every issue was stored
    already), the issues (model, issued_at) skipped as present, and the files rewritten."""

    added: int
    skipped_issues: int
    paths: tuple[str, ...]


class ForecastStore:
    """Parquet forecast store partitioned by exchange, symbol, interval, year and month."""

    def __init__(
        self, root: str | os.PathLike[str], exchange: str = partitions.DEFAULT_EXCHANGE,
        *, lock_timeout: float = 60.0,
    ) -> None:
        self.root = Path(root)
        self.exchange = partitions.validate_exchange(exchange)
        self.lock_timeout = float(lock_timeout)

    def series_dir(self, symbol: str, interval: str | Interval) -> Path:
        """Folder of one market; validates ``symbol`` and ``interval`` (they become paths)."""
        return partitions.series_dir(self.root, self.exchange, symbol, interval)

    def partitions(self, symbol: str, interval: str | Interval) -> list[Path]:
        """Committed month files of a market, oldest month first."""
        return list(partitions.committed_months(self.series_dir(symbol, interval)).values())

    # -- writing -------------------------------------------------------------------------------

    def write(self, symbol: str, interval: str | Interval, rows: pd.DataFrame) -> ForecastWrite:
        """Store the issues of ``rows`` (n, 8) not stored yet; rewrite only their months."""
        series = self.series_dir(symbol, interval)  # validates before anything is written
        iv = Interval.parse(interval)
        df = _check_rows(cast_forecasts(rows))
        if df.empty:
            return ForecastWrite(0, 0, ())
        months = partitions.month_keys(df["issued_at"].astype("int64").to_numpy())
        added, skipped, paths = 0, 0, []
        label = f"forecasts of {validate_symbol(symbol)} {iv.value}"
        with series_lock(series / partitions.LOCK_NAME, label, self.lock_timeout):
            for key in np.unique(months):
                month = partitions.month_of_key(int(key))
                path = partitions.month_path(series, month)
                new = df[months == key]
                old = self._read_file(path, symbol, iv) if path.is_file() else empty_forecasts()
                stored = set(zip(old["model"], old["issued_at"], strict=True))
                fresh = [(m, t) not in stored for m, t in zip(new["model"], new["issued_at"],
                                                               strict=True)]
                keep = new[np.asarray(fresh, dtype=bool)]
                skipped += len(set(zip(new["model"], new["issued_at"], strict=True)) & stored)
                if keep.empty:
                    continue
                merged = pd.concat([old, keep], ignore_index=True)
                merged = merged.sort_values(["issued_at", "model", "step"], kind="stable")
                with atomic_path(path, suffix=".parquet") as tmp:
                    pq.write_table(_to_table(merged), tmp, compression=COMPRESSION,
                                   row_group_size=ROW_GROUP_ROWS)
                added += len(keep)
                paths.append(str(path))
        return ForecastWrite(added, skipped, tuple(paths))

    # -- reading -------------------------------------------------------------------------------

    def read(
        self, symbol: str, interval: str | Interval, since: object | None = None
    ) -> pd.DataFrame:
        """Stored forecasts (n, 8) issued at or after ``since`` (any time :func:`to_epoch_ms`
        reads), sorted by (issued_at, model, step); an empty typed frame when none."""
        iv = Interval.parse(interval)
        files = partitions.committed_months(self.series_dir(symbol, iv))
        since_ms = None if since is None else to_epoch_ms(since, "since")
        if since_ms is not None:
            first = int(partitions.month_keys(np.array([since_ms]))[0])
            files = {m: p for m, p in files.items() if partitions.month_key(m) >= first}
        frames = [self._read_file(p, symbol, iv, since_ms) for p in files.values()]
        if not frames:
            return empty_forecasts()
        df = pd.concat(frames, ignore_index=True)
        if since_ms is not None:
            df = df[df["issued_at"].astype("int64").to_numpy() >= since_ms]
        return df.sort_values(["issued_at", "model", "step"], kind="stable").reset_index(drop=True)

    def latest(self, symbol: str, interval: str | Interval) -> pd.DataFrame:
        """Every model's rows of the newest issue (K per model), or an empty typed frame."""
        files = self.partitions(symbol, interval)
        if not files:
            return empty_forecasts()
        df = self._read_file(files[-1], symbol, Interval.parse(interval))
        if df.empty:
            return df
        newest = df["issued_at"].max()
        out = df[df["issued_at"] == newest]
        return out.sort_values(["model", "step"], kind="stable").reset_index(drop=True)

    def _read_file(
        self, path: Path, symbol: str, interval: Interval, since_ms: int | None = None
    ) -> pd.DataFrame:
        """One month's rows (issued at or after ``since_ms`` when given: row groups before
        it are skipped by their statistics)."""
        rebuild = REBUILD.format(path=path, symbol=symbol, interval=interval.value)
        filters = None if since_ms is None else (
            pc.field("issued_at") >= pa.scalar(since_ms, type=pa.timestamp("ms", tz="UTC")))
        try:
            table = pq.read_table(path, schema=ARROW_SCHEMA, partitioning=None, filters=filters)
        except (OSError, pa.ArrowException) as exc:
            raise CorruptStoreError(path, f"unreadable forecast file: {exc}", rebuild) from exc
        df = table.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get)
        df["step"] = df["step"].astype("int64")
        return cast_forecasts(df)


def _check_rows(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` if every row is a well-formed forecast, else ``BadInputError`` naming the problem."""
    if df.empty:
        return df
    for col in ("model", "run_id", "dataset_id", "issued_at", "target_time", "step",
                "predicted_close"):
        if df[col].isna().any():
            raise BadInputError(f"forecast rows: {col} has missing values")
    if (df["step"] < 1).any():
        raise BadInputError("forecast rows: step counts from 1")
    if not np.isfinite(df["predicted_close"].to_numpy(dtype=np.float64)).all():
        raise BadInputError("forecast rows: predicted_close must be finite")
    if df.duplicated(["model", "issued_at", "step"]).any():
        raise BadInputError("forecast rows: a (model, issued_at, step) appears twice")
    if (df["target_time"] <= df["issued_at"]).any():
        raise BadInputError("forecast rows: target_time must come after issued_at")
    return df


def _to_table(df: pd.DataFrame) -> pa.Table:
    return arrow_table(df, ARROW_SCHEMA)
