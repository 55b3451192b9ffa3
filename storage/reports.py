"""The report store: ``reports/<run-id>/`` and ``reports/comparisons/``, written atomically.

```
reports/<run-id>/report.html          # self-contained (PNG base64), leaderboard + metadata
reports/<run-id>/leaderboard.json     # list of rows; leaderboard.csv; evaluation.json; <figure>.png
reports/<run-id>/inputs.sha256        # fingerprint of the inputs, written last
reports/comparisons/<seed>__vs__<honest>.html|.json
reports/walk-forward/<last-fold-run-id>.html|.json|.png   # one page per walk-forward evaluation
reports/markets.html|.json            # every market's champion and live skill (the index)
reports/live/<SYMBOL>-<INTERVAL>.png  # live scores chart of a market, redrawn at each scoring
```
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from storage.atomic import atomic_write_bytes, atomic_write_text
from storage.errors import CorruptStoreError
from storage.remote import sync_scope
from storage.runs import validate_name
from storage.schema import Interval, validate_symbol

REPORT_HTML = "report.html"
LEADERBOARD_JSON = "leaderboard.json"
LEADERBOARD_CSV = "leaderboard.csv"
EVALUATION_JSON = "evaluation.json"
INPUTS_FILE = "inputs.sha256"
COMPARISONS_DIR = "comparisons"
WALK_FORWARD_DIR = "walk-forward"
#: The cross-market index: every market's champion and live skill.
MARKETS_PAGE = "markets"
LIVE_DIR = "live"


class ReportStore:
    """Every run's report folder under one root (``DataLayout.reports``)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def report_dir(self, run_id: str) -> Path:
        """The report folder of one run."""
        path = self.root / validate_name(run_id)
        sync_scope(path)
        return path

    def rebuild_hint(self, run_id: str) -> str:
        """The command that rewrites a run's report (the stamp goes first, or it is reused)."""
        return f"rm {self.report_dir(run_id) / INPUTS_FILE} && cryptoflow report --run {run_id}"

    def current_report(self, run_id: str, fingerprint: str) -> Path | None:
        """The run's ``report.html`` if it was made from inputs with this fingerprint."""
        report_dir = self.report_dir(run_id)
        html, stamp = report_dir / REPORT_HTML, report_dir / INPUTS_FILE
        if html.is_file() and stamp.is_file() and stamp.read_text().strip() == fingerprint:
            return html
        return None

    def write_files(self, run_id: str, files: Mapping[str, str | bytes]) -> dict[str, Path]:
        """Write file name -> text or bytes into the run's report folder, in the given order."""
        report_dir = self.report_dir(run_id)
        report_dir.mkdir(parents=True, exist_ok=True)
        written = {}
        for name, content in files.items():
            target = report_dir / validate_name(name, "report file name")
            if isinstance(content, bytes):
                written[name] = atomic_write_bytes(target, content)
            else:
                written[name] = atomic_write_text(target, content)
        return written

    def write_stamp(self, run_id: str, fingerprint: str) -> Path:
        """Record the inputs' fingerprint (last: a crash before it means "not up to date")."""
        return atomic_write_text(self.report_dir(run_id) / INPUTS_FILE, fingerprint + "\n")

    def read_leaderboard(self, run_id: str) -> list[dict[str, Any]] | None:
        """A run's ``leaderboard.json`` rows, or None when the run has not been reported yet."""
        path = self.report_dir(run_id) / LEADERBOARD_JSON
        if not path.is_file():
            return None
        try:
            rows = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CorruptStoreError(
                path, f"unreadable leaderboard: {exc}", self.rebuild_hint(run_id)
            ) from None
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise CorruptStoreError(
                path, "a leaderboard is a JSON list of rows", self.rebuild_hint(run_id)
            )
        return rows

    def comparison_path(self, seed_run: str, honest_run: str, suffix: str = ".html") -> Path:
        """``comparisons/<seed>__vs__<honest><suffix>``."""
        name = f"{validate_name(seed_run)}__vs__{validate_name(honest_run)}{suffix}"
        path = self.root / COMPARISONS_DIR / name
        sync_scope(path)
        return path

    def write_comparison(
        self, seed_run: str, honest_run: str, json_text: str, html_text: str
    ) -> Path:
        """Write the comparison's JSON and HTML; returns the HTML's path."""
        atomic_write_text(self.comparison_path(seed_run, honest_run, ".json"), json_text)
        return atomic_write_text(self.comparison_path(seed_run, honest_run), html_text)

    def walk_forward_path(self, last_run: str, suffix: str = ".html") -> Path:
        """``walk-forward/<run id of the last fold><suffix>``."""
        path = self.root / WALK_FORWARD_DIR / f"{validate_name(last_run)}{suffix}"
        sync_scope(path)
        return path

    def write_walk_forward(
        self, last_run: str, json_text: str, html_text: str, png: bytes
    ) -> Path:
        """Write a walk-forward summary's JSON, chart and HTML (last); returns the HTML's path."""
        atomic_write_text(self.walk_forward_path(last_run, ".json"), json_text)
        atomic_write_bytes(self.walk_forward_path(last_run, ".png"), png)
        return atomic_write_text(self.walk_forward_path(last_run), html_text)

    def markets_path(self, suffix: str = ".html") -> Path:
        """``markets<suffix>``: the cross-market index."""
        path = self.root / f"{MARKETS_PAGE}{suffix}"
        sync_scope(path)
        return path

    def read_markets(self) -> list[dict[str, Any]]:
        """The rows of the cross-market index (empty when there is none yet)."""
        path = self.markets_path(".json")
        if not path.is_file():
            return []
        try:
            rows = json.loads(path.read_text(encoding="utf-8"))["markets"]
            if not isinstance(rows, list) or not all(
                isinstance(r, dict) and {"symbol", "interval"} <= r.keys() for r in rows
            ):
                raise ValueError("markets must be a list of rows with symbol and interval")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise CorruptStoreError(path, f"unreadable markets index: {exc}",
                                    f"rm {path} (the next pipeline or forecast run rewrites it)"
                                    ) from exc
        return rows

    def write_markets(self, json_text: str, html_text: str) -> Path:
        """Write the cross-market index's JSON and HTML (last); returns the HTML's path."""
        atomic_write_text(self.markets_path(".json"), json_text)
        return atomic_write_text(self.markets_path(), html_text)
    def live_chart_path(self, symbol: str, interval: str) -> Path:
        """``live/<SYMBOL>-<INTERVAL>.png``: the market's live scores chart (validated: the
        symbol and interval become a file name)."""
        name = f"{validate_symbol(symbol)}-{Interval.parse(interval).value}.png"
        path = self.root / LIVE_DIR / name
        sync_scope(path)
        return path

    def write_live_chart(self, symbol: str, interval: str, png: bytes) -> Path:
        """Replace the market's live scores chart atomically."""
        return atomic_write_bytes(self.live_chart_path(symbol, interval), png)
