"""The champion registry: the current champion of each market and protocol, every earlier
champion, and the challengers the champion gate kept out. One small JSON file
(``reports/champions.json``), rewritten atomically.

Each record: ``run_id``, ``protocol``, ``model``, ``epoch``, ``checkpoint``, ``dataset_id``,
``candle_fingerprint``, ``metrics`` (dict), ``flow_run_id``, ``recorded_at``; since version 2
also ``symbol``, ``interval`` (the market), ``promoted``, ``reason`` (one line) and ``evidence``
(the gate's numbers on the same windows). Version 1 files (no market, no challengers) still read.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from storage.atomic import atomic_write_text
from storage.errors import BadInputError, CorruptStoreError
from storage.remote import sync_scope

REGISTRY_FILE = "champions.json"
REQUIRED_FIELDS: tuple[str, ...] = (
    "run_id",
    "protocol",
    "model",
    "epoch",
    "checkpoint",
    "dataset_id",
    "candle_fingerprint",
    "metrics",
    "flow_run_id",
)
_VERSION = 2
_READABLE_VERSIONS = (1, 2)
#: The registry is rebuilt by reporting the runs again (each report records its champion).
REBUILD = "cryptoflow report --run <run-id>"


class GateRule(StrEnum):
    """What a run's winner must beat, on the same evaluation windows, to become champion."""

    BEAT_BOTH = "beat-both"  # persistence and the current champion of its market
    BEAT_PERSISTENCE = "beat-persistence"
    OFF = "off"  # every winner is promoted (the registry before the gate)


def same_market(
    record: Mapping[str, Any], protocol: str, symbol: str | None, interval: str | None
) -> bool:
    """Whether ``record`` is of ``protocol`` and, when given, of market (symbol, interval); a
    record without a market (version 1) matches only when no market is asked for."""
    if record.get("protocol") != protocol:
        return False
    if symbol is None and interval is None:
        return True
    return record.get("symbol") == symbol and record.get("interval") == interval


class ChampionRegistry:
    """Champions in the order they were promoted (the current one of a market is its latest)
    and the challengers kept out, each run at most once in either list."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)  # = DataLayout.reports
        self.path = self.root / REGISTRY_FILE
        sync_scope(self.path)  # a remote data dir: the registry, pulled once per session

    def _read(self) -> dict[str, list[dict[str, Any]]]:
        if not self.path.is_file():
            return {"champions": [], "challengers": []}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CorruptStoreError(
                self.path, f"champion registry is not valid JSON: {exc}", REBUILD
            ) from None
        if not isinstance(data, dict) or not isinstance(data.get("champions"), list):
            raise CorruptStoreError(self.path, "champion registry has an unexpected shape", REBUILD)
        version = data.get("version", 1)
        if version not in _READABLE_VERSIONS:
            raise CorruptStoreError(
                self.path,
                f"champion registry version {version!r} is not one this code reads "
                f"({', '.join(map(str, _READABLE_VERSIONS))})",
                REBUILD,
            )
        challengers = data.get("challengers", [])
        if not isinstance(challengers, list):
            raise CorruptStoreError(
                self.path, "champion registry challengers is not a list", REBUILD
            )
        return {
            "champions": [dict(r) for r in data["champions"]],
            "challengers": [dict(r) for r in challengers],
        }

    def records(self) -> list[dict[str, Any]]:
        """Every promoted champion, oldest first (empty when none)."""
        return self._read()["champions"]

    def challengers(self) -> list[dict[str, Any]]:
        """Every challenger the gate kept out, oldest first, each with its ``reason``."""
        return self._read()["challengers"]

    def current(
        self, protocol: str = "honest", symbol: str | None = None, interval: str | None = None
    ) -> dict[str, Any] | None:
        """The latest champion promoted under ``protocol`` (of that market when given), or None."""
        matching = [r for r in self.records() if same_market(r, protocol, symbol, interval)]
        return matching[-1] if matching else None

    def previous(
        self, protocol: str = "honest", symbol: str | None = None, interval: str | None = None
    ) -> list[dict[str, Any]]:
        """Champions before the current one under ``protocol`` (and market), oldest first."""
        matching = [r for r in self.records() if same_market(r, protocol, symbol, interval)]
        return matching[:-1]

    def record(
        self,
        champion: Mapping[str, Any],
        *,
        promoted: bool = True,
        reason: str | None = None,
        evidence: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Record a run's winner: ``promoted`` appends it as the current champion of its market,
        else it joins the challengers and the current champion stays. An earlier record of the
        same run (in either list) is replaced. Returns the stored entry."""
        missing = [k for k in REQUIRED_FIELDS if k not in champion]
        if missing:
            raise BadInputError(f"champion record lacks fields {missing}")
        if not isinstance(champion["metrics"], Mapping):
            raise BadInputError("champion record metrics must be a mapping")
        if evidence is not None and not isinstance(evidence, Mapping):
            raise BadInputError("champion record evidence must be a mapping")
        fields: dict[str, Any] = {**dict(champion), "promoted": bool(promoted)}
        if reason is not None:
            fields["reason"] = str(reason)
        if evidence is not None:
            fields["evidence"] = dict(evidence)
        entry = json.loads(json.dumps(fields, default=str))  # JSON-safe copy
        entry.setdefault("recorded_at", datetime.now(UTC).isoformat())
        data = self._read()
        lists = {
            name: [r for r in rows if r.get("run_id") != entry["run_id"]]
            for name, rows in data.items()
        }
        lists["champions" if promoted else "challengers"].append(entry)
        text = json.dumps({"version": _VERSION, **lists}, indent=2, allow_nan=False)
        atomic_write_text(self.path, text + "\n")
        return entry
