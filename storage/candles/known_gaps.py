"""Known gaps: holes inside a series that the server confirmed (asked again, still empty).

Kept beside the partitions in ``<series>/known-gaps.json`` (written atomically, under the series
lock), so a report can tell a hole the exchange does not have from one never asked again::

    {"version": 1, "gaps": [{"start": ms, "end": ms, "missing": n, "checked": ms}, ...]}

``start``/``end`` are the first and last missing open time (inclusive), ``checked`` the server
time of the last confirmation. The record holds only holes the store still has.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import orjson
import pandas as pd

from storage.atomic import atomic_write_bytes
from storage.errors import CorruptStoreError
from storage.schema import to_ms

KNOWN_GAPS_NAME = "known-gaps.json"
_VERSION = 1


@dataclass(frozen=True)
class KnownGap:
    """A hole the server confirmed: first and last missing open time (ms), count, when."""

    start_ms: int
    end_ms: int
    missing: int
    checked_ms: int


def read_known_gaps(series: Path) -> list[KnownGap]:
    """The series' known gaps, oldest first (none when the record is absent)."""
    path = series / KNOWN_GAPS_NAME
    if not path.is_file():
        return []
    try:
        body = orjson.loads(path.read_bytes())
        return [
            KnownGap(int(g["start"]), int(g["end"]), int(g["missing"]), int(g["checked"]))
            for g in body["gaps"]
        ]
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise CorruptStoreError(
            path, f"unreadable known-gaps record ({exc})", rebuild=f"rm {path}"
        ) from None


def write_known_gaps(series: Path, gaps: list[KnownGap]) -> None:
    """Replace the record (atomically); an empty list removes it."""
    path = series / KNOWN_GAPS_NAME
    if not gaps:
        path.unlink(missing_ok=True)
        return
    rows = [
        {"start": g.start_ms, "end": g.end_ms, "missing": g.missing, "checked": g.checked_ms}
        for g in gaps
    ]
    atomic_write_bytes(path, orjson.dumps({"version": _VERSION, "gaps": rows}))


def reconcile(
    holes: pd.DataFrame,
    previous: list[KnownGap],
    confirmed: list[tuple[int, int]],
    step: int,
    checked_ms: int,
) -> list[KnownGap]:
    """The known gaps among the store's ``holes`` (columns start, end, missing; one row each).

    A hole is known when ``confirmed`` (runs of open times the server lacked twice in this run)
    covers it, or when it lies inside a gap known before (a hole only shrinks when refilled).
    """
    covered = _merge(sorted(confirmed), step)
    starts, ends = to_ms(holes["start"]), to_ms(holes["end"])
    known: list[KnownGap] = []
    for start, end, missing in zip(starts, ends, holes["missing"], strict=True):
        start, end = int(start), int(end)
        if any(a <= start and end <= b for a, b in covered):
            known.append(KnownGap(start, end, int(missing), int(checked_ms)))
            continue
        old = next((g for g in previous if g.start_ms <= start and end <= g.end_ms), None)
        if old is not None:
            known.append(KnownGap(start, end, int(missing), old.checked_ms))
    return known


def _merge(runs: list[tuple[int, int]], step: int) -> list[tuple[int, int]]:
    """Sorted inclusive runs with adjacent or overlapping ones joined."""
    merged: list[tuple[int, int]] = []
    for a, b in runs:
        if merged and a <= merged[-1][1] + step:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged

