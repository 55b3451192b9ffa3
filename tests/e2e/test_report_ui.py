"""The report's markdown artifact as the Prefect UI shows it: in a real browser against a real
Prefect server, the leaderboard renders as a table and every embedded PNG figure loads."""

from __future__ import annotations

import shutil
import time

import httpx
import pytest

from tasks.report.leaderboard import leaderboard_rows
from tasks.report.markdown import render_report_markdown
from tasks.report.plots import report_figures
from tests.support.reports import _evaluation
from tests.support.servers import prefect_server


@pytest.mark.slow
def test_markdown_artifact_renders_table_and_images_in_the_ui(tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    ev = _evaluation()
    rows = leaderboard_rows(ev)
    figures = report_figures(ev, rows, None, dpi=40)
    markdown = render_report_markdown(ev.meta, rows, figures, "/data/reports/x/report.html")
    with prefect_server(tmp_path / "home", tmp_path / "server.log") as api:
        r = httpx.post(
            f"{api}/artifacts/", json={"key": "report-ui", "type": "markdown", "data": markdown}
        )
        r.raise_for_status()
        artifact_id = r.json()["id"]
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=chromium, args=["--no-sandbox", "--disable-gpu"]
            )
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.goto(
                    f"{api.removesuffix('/api')}/artifacts/artifact/{artifact_id}",
                    wait_until="networkidle",
                )
                page.wait_for_selector("table", timeout=30_000)
                deadline = time.monotonic() + 30
                widths: list[int] = []
                while time.monotonic() < deadline:
                    widths = page.evaluate(
                        "Array.from(document.images)"
                        ".filter(i => i.src.startsWith('data:image/png'))"
                        ".map(i => i.complete ? i.naturalWidth : 0)"
                    )
                    if len(widths) == len(figures) and all(w > 0 for w in widths):
                        break
                    time.sleep(0.5)
                assert len(widths) == len(figures) and all(w > 100 for w in widths), widths
                body_rows = page.evaluate("document.querySelectorAll('table tbody tr').length")
                assert body_rows == len(rows)
                assert "gru_tanh_leaky" in page.inner_text("table")
            finally:
                browser.close()
