"""The champion registry: which model won which run, with its lineage, keeping every previous
champion. One small JSON file (``reports/champions.json``), rewritten atomically.

Each record: ``run_id``, ``protocol``, ``model``, ``epoch``, ``checkpoint``, ``dataset_id``,
``candle_fingerprint``, ``metrics`` (dict), ``flow_run_id``, ``recorded_at``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from storage.atomic import atomic_write_text
from storage.errors import BadInputError, CorruptStoreError

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
_VERSION = 1
#: The registry is rebuilt by reporting the runs again (each report records its champion).
REBUILD = "cryptoflow report --run <run-id>"


class ChampionRegistry:
    """Append-only history of champions; the current one is the latest record per protocol."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)  # = DataLayout.reports
        self.path = self.root / REGISTRY_FILE

    def records(self) -> list[dict[str, Any]]:
        """Every recorded champion, oldest first (empty when none)."""
        if not self.path.is_file():
            return []
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CorruptStoreError(
                self.path, f"champion registry is not valid JSON: {exc}", REBUILD
            ) from None
        if not isinstance(data, dict) or not isinstance(data.get("champions"), list):
            raise CorruptStoreError(self.path, "champion registry has an unexpected shape", REBUILD)
        return [dict(r) for r in data["champions"]]

    def current(self, protocol: str = "honest") -> dict[str, Any] | None:
        """The latest champion recorded under ``protocol``, or None."""
        matching = [r for r in self.records() if r.get("protocol") == protocol]
        return matching[-1] if matching else None

    def previous(self, protocol: str = "honest") -> list[dict[str, Any]]:
        """Champions before the current one under ``protocol``, oldest first."""
        matching = [r for r in self.records() if r.get("protocol") == protocol]
        return matching[:-1]

    def record(self, champion: Mapping[str, Any]) -> dict[str, Any]:
        """Append a champion (replacing an earlier record of the same run); return it."""
        missing = [k for k in REQUIRED_FIELDS if k not in champion]
        if missing:
            raise BadInputError(f"champion record lacks fields {missing}")
        if not isinstance(champion["metrics"], Mapping):
            raise BadInputError("champion metrics must be a mapping")
        entry = json.loads(json.dumps(dict(champion), default=str))  # JSON-safe copy
        entry.setdefault("recorded_at", datetime.now(UTC).isoformat())
        kept = [r for r in self.records() if r.get("run_id") != entry["run_id"]]
        kept.append(entry)
        text = json.dumps({"version": _VERSION, "champions": kept}, indent=2, allow_nan=False)
        atomic_write_text(self.path, text + "\n")
        return entry
