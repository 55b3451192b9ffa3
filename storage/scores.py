"""The live-score store: the scored errors of matured forecasts, per market, Hive-partitioned
Parquet beside the forecast store, and a small state file per market (last scored issue,
running sums since promotion, whether the degraded event went out), both written atomically.

Layout (``root`` is ``DataLayout.scores``)::

    root/exchange=poloniex/symbol=BTC_USDT/interval=MINUTE_5/year=2026/month=12/day=02/part.parquet
    root/exchange=poloniex/symbol=BTC_USDT/interval=MINUTE_5/state.json

One row per scored (``model``, ``issued_at``, ``step``): the forecast's ``target_time`` and
``predicted_close``, the stored candle's ``actual_close``, ``error = predicted - actual`` (price
units), and the issuing champion's ``run_id`` (on persistence's rows too) and ``epoch`` (null for
persistence). Files are per *day* of ``issued_at`` (Hive ``year=/month=/day=``): scoring rewrites
only the newest day's file and the last-N read opens only the newest days, so a scoring's cost
does not grow with the month (a month of 5-minute issues is ~280 k rows at K=16). Writing is
idempotent: a (model, issued_at, step) already stored is never written again.

Everything here is derived from the forecast and candle stores: a lost or corrupt file is
rebuilt by removing the market's folder and scoring again (:data:`REBUILD`).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from storage.atomic import atomic_path, atomic_write_text
from storage.candles import partitions
from storage.candles.locking import series_lock
from storage.errors import BadInputError, CorruptStoreError
from storage.frames import arrow_table, cast_frame
from storage.schema import Interval, validate_symbol

#: Column -> dtype of a stored score row (``epoch`` is null for baselines).
SCORE_DTYPES: dict[str, str] = {
    "model": "object",
    "issued_at": "datetime64[ms, UTC]",
    "step": "int64",
    "target_time": "datetime64[ms, UTC]",
    "predicted_close": "float64",
    "actual_close": "float64",
    "error": "float64",
    "run_id": "object",
    "epoch": "Int64",
}
SCORE_COLUMNS: tuple[str, ...] = tuple(SCORE_DTYPES)
ARROW_SCHEMA: pa.Schema = pa.schema(
    [
        pa.field("model", pa.string(), nullable=False),
        pa.field("issued_at", pa.timestamp("ms", tz="UTC"), nullable=False),
        pa.field("step", pa.int64(), nullable=False),
        pa.field("target_time", pa.timestamp("ms", tz="UTC"), nullable=False),
        pa.field("predicted_close", pa.float64(), nullable=False),
        pa.field("actual_close", pa.float64(), nullable=False),
        pa.field("error", pa.float64(), nullable=False),
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("epoch", pa.int64(), nullable=True),
    ]
)
COMPRESSION = "zstd"
STATE_FILE = "state.json"
DAY_MS = 86_400_000
_DAY_RE = re.compile(r"^day=(\d{2})$")
Day = tuple[int, int, int]  # (year, month, day)
STATE_VERSION = 1
#: Scores are derived data: drop the market's folder and score again from forecasts + candles
#: (the forecast flow scores after it stores; an issue it already has is not issued twice).
REBUILD = "rm -r {series} && cryptoflow forecast --symbol {symbol} --interval {interval}"


def empty_scores() -> pd.DataFrame:
    """An empty, typed score frame (0, 9)."""
    return cast_scores(pd.DataFrame({c: [] for c in SCORE_COLUMNS}))


def cast_scores(df: pd.DataFrame) -> pd.DataFrame:
    """``df``'s score columns, in order, with the store's dtypes."""
    return cast_frame(df, SCORE_DTYPES, "score")


@dataclass(frozen=True)
class ChampionKey:
    """Who issued a forecast: the champion's run, model and epoch (its identity in the
    registry; a re-recorded champion keeps it, a new champion changes it)."""

    run_id: str
    model: str
    epoch: int | None

    @classmethod
    def of(cls, record: dict[str, Any]) -> ChampionKey:
        epoch = record.get("epoch")
        return cls(str(record["run_id"]), str(record["model"]),
                   None if epoch is None else int(epoch))


@dataclass(frozen=True)
class ErrorSums:
    """Running sums of one model's errors: ``n`` errors (issue x step), squared, absolute."""

    n: int = 0
    sse: float = 0.0
    sae: float = 0.0

    def plus(self, errors: np.ndarray) -> ErrorSums:
        e = np.asarray(errors, dtype=np.float64)
        return ErrorSums(self.n + int(e.size), self.sse + float(np.sum(e * e)),
                         self.sae + float(np.sum(np.abs(e))))

    @property
    def mse(self) -> float | None:
        return self.sse / self.n if self.n else None

    @property
    def mae(self) -> float | None:
        return self.sae / self.n if self.n else None


@dataclass(frozen=True)
class ScoreState:
    """A market's scoring state: ``last_scored_ms`` (issue time of the newest scored issue,
    epoch ms; None before the first), ``champion`` whose issues the sums count, ``issues`` of
    it scored since promotion, ``sums`` per model over those issues, ``missing_targets`` (steps
    never scored because their candle is absent), ``degraded`` (the event sent for this
    champion, or None)."""

    last_scored_ms: int | None = None
    champion: ChampionKey | None = None
    issues: int = 0
    sums: dict[str, ErrorSums] = field(default_factory=dict)
    missing_targets: int = 0
    degraded: dict[str, Any] | None = None

    def to_json(self) -> str:
        data = {
            "version": STATE_VERSION,
            "last_scored_ms": self.last_scored_ms,
            "last_scored": None if self.last_scored_ms is None else
            pd.Timestamp(self.last_scored_ms, unit="ms", tz="UTC").isoformat(),
            "champion": None if self.champion is None else asdict(self.champion),
            "since_promotion": {
                "issues": self.issues,
                "models": {m: asdict(s) for m, s in sorted(self.sums.items())},
            },
            "missing_targets": self.missing_targets,
            "degraded": self.degraded,
        }
        return json.dumps(data, indent=2, sort_keys=True, allow_nan=False) + "\n"

    @classmethod
    def from_json(cls, text: str) -> ScoreState:
        """The state of ``text``; ``ValueError`` (or ``KeyError``, ``TypeError``) when it is
        not a state this code wrote."""
        data = json.loads(text)
        if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
            raise ValueError(f"not a version {STATE_VERSION} score state")
        last = data["last_scored_ms"]
        champion = data["champion"]
        since = data["since_promotion"]
        sums = {}
        for model, s in since["models"].items():
            n, sse, sae = int(s["n"]), float(s["sse"]), float(s["sae"])
            if n < 0 or not (math.isfinite(sse) and math.isfinite(sae)) or sse < 0 or sae < 0:
                raise ValueError(f"bad sums of {model!r}")
            sums[str(model)] = ErrorSums(n, sse, sae)
        degraded = data["degraded"]
        if degraded is not None and not isinstance(degraded, dict):
            raise ValueError("degraded is not an object")
        return cls(
            last_scored_ms=None if last is None else int(last),
            champion=None if champion is None else ChampionKey(
                str(champion["run_id"]), str(champion["model"]),
                None if champion["epoch"] is None else int(champion["epoch"])),
            issues=int(since["issues"]),
            sums=sums,
            missing_targets=int(data["missing_targets"]),
            degraded=degraded,
        )


@dataclass(frozen=True)
class ScoreWrite:
    """What :meth:`ScoreStore.write` did: rows added, rows skipped as stored, files rewritten."""

    added: int
    skipped: int
    paths: tuple[str, ...]


class ScoreStore:
    """Scored errors and scoring state of each market, under one root (``DataLayout.scores``)."""

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

    def rebuild_hint(self, symbol: str, interval: str | Interval) -> str:
        """The command that rebuilds a market's scores from its forecasts and candles."""
        iv = Interval.parse(interval)
        return REBUILD.format(series=self.series_dir(symbol, iv), symbol=validate_symbol(symbol),
                              interval=iv.value)

    def partitions(self, symbol: str, interval: str | Interval) -> list[Path]:
        """Committed day files of a market, oldest day first."""
        return list(committed_days(self.series_dir(symbol, interval)).values())

    def lock(self, symbol: str, interval: str | Interval) -> Any:
        """The market's exclusive write lock (re-entrant in a thread): hold it from reading
        the state to writing it, so two scorings of one market cannot interleave."""
        iv = Interval.parse(interval)
        series = self.series_dir(symbol, iv)
        return series_lock(series / partitions.LOCK_NAME,
                           f"live scores of {validate_symbol(symbol)} {iv.value}",
                           self.lock_timeout)

    # -- state ---------------------------------------------------------------------------------

    def state_path(self, symbol: str, interval: str | Interval) -> Path:
        return self.series_dir(symbol, interval) / STATE_FILE

    def read_state(self, symbol: str, interval: str | Interval) -> ScoreState:
        """The market's scoring state (a fresh one when nothing was scored yet);
        ``CorruptStoreError`` naming the rebuild when the file is not a valid state."""
        path = self.state_path(symbol, interval)
        if not path.is_file():
            return ScoreState()
        try:
            return ScoreState.from_json(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
            raise CorruptStoreError(
                path, f"unreadable score state: {exc!r}", self.rebuild_hint(symbol, interval)
            ) from None

    def write_state(self, symbol: str, interval: str | Interval, state: ScoreState) -> Path:
        """Replace the market's state atomically (unchanged text: the file is left alone)."""
        path = self.state_path(symbol, interval)
        text = state.to_json()
        if path.is_file() and path.read_text(encoding="utf-8") == text:
            return path
        return atomic_write_text(path, text)

    # -- rows ----------------------------------------------------------------------------------

    def write(self, symbol: str, interval: str | Interval, rows: pd.DataFrame) -> ScoreWrite:
        """Store the rows of ``rows`` (n, 9) not stored yet; rewrite only their days' files."""
        series = self.series_dir(symbol, interval)  # validates before anything is written
        iv = Interval.parse(interval)
        df = _check_rows(cast_scores(rows))
        if df.empty:
            return ScoreWrite(0, 0, ())
        days = df["issued_at"].astype("int64").to_numpy() // DAY_MS
        added, skipped, paths = 0, 0, []
        label = f"live scores of {validate_symbol(symbol)} {iv.value}"
        with series_lock(series / partitions.LOCK_NAME, label, self.lock_timeout):
            for key in np.unique(days):
                path = day_path(series, int(key))
                new = df[days == key]
                old = self._read_file(path, symbol, iv) if path.is_file() else empty_scores()
                # only stored rows at or after the first new issue can clash (scoring moves
                # forward in issue time): the key set stays O(new), not O(month)
                first = int(new["issued_at"].astype("int64").min())
                near = old[old["issued_at"].astype("int64").to_numpy() >= first]
                stored = set(zip(near["model"], near["issued_at"], near["step"], strict=True))
                fresh = np.fromiter(
                    ((m, t, s) not in stored for m, t, s in
                     zip(new["model"], new["issued_at"], new["step"], strict=True)),
                    dtype=bool, count=len(new),
                )
                keep = new[fresh]
                skipped += int((~fresh).sum())
                if keep.empty:
                    continue
                merged = pd.concat([old, keep], ignore_index=True) if len(old) else keep
                merged = merged.sort_values(["issued_at", "model", "step"], kind="stable")
                with atomic_path(path, suffix=".parquet") as tmp:
                    pq.write_table(_to_table(merged), tmp, compression=COMPRESSION)
                added += len(keep)
                paths.append(str(path))
        return ScoreWrite(added, skipped, tuple(paths))

    def read(self, symbol: str, interval: str | Interval) -> pd.DataFrame:
        """Every stored score row (n, 9), sorted by (issued_at, model, step)."""
        iv = Interval.parse(interval)
        frames = [self._read_file(p, symbol, iv) for p in self.partitions(symbol, iv)]
        return _sorted(frames)

    def read_tail(
        self, symbol: str, interval: str | Interval, issues: int, run_id: str | None = None
    ) -> pd.DataFrame:
        """The rows of the newest ``issues`` issue times (of champion run ``run_id`` when
        given: its own rows and persistence's), reading day files newest first only until
        that many are found: O(issues), whatever the history."""
        if issues < 1:
            raise BadInputError(f"issues: at least 1 (got {issues})")
        iv = Interval.parse(interval)
        tables: list[pa.Table] = []
        found: set[int] = set()
        for path in reversed(self.partitions(symbol, iv)):
            table = self._read_table(path, symbol, iv, run_id)  # filtered in Arrow
            tables.append(table)
            found.update(np.unique(table.column("issued_at").cast(pa.int64()).to_numpy()).tolist())
            if len(found) >= issues:
                break
        if not tables:
            return empty_scores()
        table = pa.concat_tables(tables)
        if len(found) > issues:
            cut = pa.scalar(sorted(found)[-issues], type=pa.timestamp("ms", tz="UTC"))
            table = table.filter(pc.greater_equal(table.column("issued_at"), cut))
        return _sorted([_to_frame(table)])

    def _read_file(self, path: Path, symbol: str, interval: Interval) -> pd.DataFrame:
        return _to_frame(self._read_table(path, symbol, interval))

    def _read_table(
        self, path: Path, symbol: str, interval: Interval, run_id: str | None = None
    ) -> pa.Table:
        """One day file as Arrow (only run ``run_id``'s rows when given)."""
        filters = None if run_id is None else pc.field("run_id") == run_id
        try:
            return pq.read_table(path, schema=ARROW_SCHEMA, partitioning=None, filters=filters)
        except (OSError, pa.ArrowException) as exc:
            raise CorruptStoreError(path, f"unreadable score file: {exc}",
                                    self.rebuild_hint(symbol, interval)) from exc


def _to_frame(table: pa.Table) -> pd.DataFrame:
    """A typed score frame of an Arrow table of the store's schema."""
    df = table.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get)
    df["step"] = df["step"].astype("int64")
    return cast_scores(df)


def day_path(series: Path, day: int) -> Path:
    """The file of day ``day`` (days since 1970-01-01, UTC) of a market's folder."""
    d = dt.date(1970, 1, 1) + dt.timedelta(days=int(day))
    return series / f"year={d.year:04d}" / f"month={d.month:02d}" / f"day={d.day:02d}" / (
        partitions.PART_NAME)


def committed_days(series: Path) -> dict[Day, Path]:
    """Committed day files of a market, ascending (temporary files are ignored)."""
    found: dict[Day, Path] = {}
    for (year, month), part in _month_dirs(series).items():
        for ddir in part.iterdir():
            m = _DAY_RE.fullmatch(ddir.name)
            if m and (ddir / partitions.PART_NAME).is_file():
                found[(year, month, int(m.group(1)))] = ddir / partitions.PART_NAME
    return dict(sorted(found.items()))


def _month_dirs(series: Path) -> dict[tuple[int, int], Path]:
    out: dict[tuple[int, int], Path] = {}
    if not series.is_dir():
        return out
    for ydir in series.iterdir():
        if not (ydir.is_dir() and re.fullmatch(r"year=\d{4}", ydir.name)):
            continue
        for mdir in ydir.iterdir():
            mm = re.fullmatch(r"month=(\d{2})", mdir.name)
            if mm and mdir.is_dir():
                out[(int(ydir.name[5:]), int(mm.group(1)))] = mdir
    return out


def _sorted(frames: list[pd.DataFrame]) -> pd.DataFrame:
    frames = [f for f in frames if len(f)]
    if not frames:
        return empty_scores()
    df = pd.concat(frames, ignore_index=True)
    return df.sort_values(["issued_at", "model", "step"], kind="stable").reset_index(drop=True)


def _check_rows(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` if every row is a well-formed score, else ``BadInputError`` naming the problem."""
    if df.empty:
        return df
    for col in ("model", "run_id", "issued_at", "target_time", "step"):
        if df[col].isna().any():
            raise BadInputError(f"score rows: {col} has missing values")
    for col in ("predicted_close", "actual_close", "error"):
        if not np.isfinite(df[col].to_numpy(dtype=np.float64)).all():
            raise BadInputError(f"score rows: {col} must be finite")
    if df.duplicated(["model", "issued_at", "step"]).any():
        raise BadInputError("score rows: a (model, issued_at, step) appears twice")
    return df


def _to_table(df: pd.DataFrame) -> pa.Table:
    return arrow_table(df, ARROW_SCHEMA)
