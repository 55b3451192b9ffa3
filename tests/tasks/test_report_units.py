"""Leaderboard rows, renderings, the tutorial table and the champion registry, on small inline
fixtures (no training, no Prefect)."""

from __future__ import annotations

import base64
import csv
import dataclasses
import io
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from storage.champions import ChampionRegistry
from storage.errors import CorruptStoreError
from tasks.metrics import forecast_metrics, persistence_mae
from tasks.report.cells import format_cell
from tasks.report.compare import comparison_rows, render_comparison_html
from tasks.report.html import render_report_html
from tasks.report.labels import describe_model
from tasks.report.leaderboard import (
    LEADERBOARD_COLUMNS,
    TABLE_KEYS,
    leaderboard_csv,
    leaderboard_json,
    leaderboard_rows,
)
from tasks.report.markdown import leaderboard_markdown, render_report_markdown
from tasks.report.plots import report_figures
from tasks.report.publish import artifact_key
from tasks.report.tutorial import TUTORIAL_RESULTS
from tests.support.reports import _evaluation

REPO = Path(__file__).resolve().parents[2]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_rows_one_per_entry_sorted_by_validation_loss():
    rows = leaderboard_rows(_evaluation())
    assert [r["model"] for r in rows] == [
        "gru_tanh_leaky",
        "persistence",
        "linear",
        "lag",
        "cnn2_relu",
        "cnn4_leaky",
    ]
    for r in rows:
        assert {"model", "best_epoch", "val_loss", "test_mse", "skill", "status"} <= set(r)
    gru = rows[0]
    assert gru["champion"] and (gru["layers"], gru["activation"]) == (1, "tanh + Leaky ReLU")
    assert gru["test_mse"] == pytest.approx(4.0)  # offset 2 everywhere -> MSE 4
    assert gru["rmse_by_step"] == pytest.approx([2.0] * 4)
    assert rows[-1]["status"] == "diverged" and rows[-1]["val_loss"] is None
    json.loads(leaderboard_json(rows))  # valid JSON, no NaN


def test_csv_has_tutorial_columns_first_and_whole_numbers():
    text = leaderboard_csv(leaderboard_rows(_evaluation()))
    reader = csv.DictReader(io.StringIO(text))
    assert reader.fieldnames[:5] == ["model", "layers", "activation", "val_loss", "test_mse"]
    rows = list(reader)
    assert rows[0]["layers"] == "1" and rows[0]["best_epoch"] == "2"
    assert rows[1]["layers"] == "" and len(rows) == 6


def _evaluation_with_significance():
    """The support evaluation with persistence scored as persistence (it predicts no move) and
    the champion given a MASE and its significance against persistence."""
    ev = _evaluation()
    rng = np.random.default_rng(0)
    actual = 4000 + rng.normal(0, 10, (8, 4)).cumsum(axis=1)
    last = actual[:, 0] - 1
    no_move = np.repeat(last[:, None], 4, axis=1)
    persistence = ev.entry("persistence")
    persistence.evaluation = forecast_metrics(
        actual,
        no_move,
        last,
        actual_scaled=actual,
        predicted_scaled=no_move,
        mase_scale=persistence_mae(actual, last),
    )
    persistence.significance = {"skill_lo": 0.0, "skill_hi": 0.0, "dm_stat": None, "dm_p": None}
    gru = ev.entry("gru_tanh_leaky")
    gru.evaluation = dataclasses.replace(gru.evaluation, mase=gru.evaluation.mae / 4.0)
    gru.significance = {"skill_lo": -0.05, "skill_hi": 0.125, "dm_stat": -2.5, "dm_p": 0.0125}
    return ev


NEW_COLUMNS = ("test_mase", "val_mase", "skill_lo", "skill_hi", "dm_stat", "dm_p")


def test_rows_csv_and_json_carry_mase_and_significance():
    ev = _evaluation_with_significance()
    rows = {r["model"]: r for r in leaderboard_rows(ev)}
    gru, persistence = rows["gru_tanh_leaky"], rows["persistence"]
    assert gru["test_mase"] == pytest.approx(ev.entry("gru_tanh_leaky").evaluation.mae / 4.0)
    assert gru["val_mase"] is None  # the support metrics have no MASE scale: NaN -> None
    assert (gru["skill_lo"], gru["skill_hi"], gru["dm_stat"], gru["dm_p"]) == (
        -0.05,
        0.125,
        -2.5,
        0.0125,
    )
    assert persistence["direction_accuracy"] is None  # undefined: it never predicts a move
    assert persistence["dm_stat"] is None and persistence["dm_p"] is None  # the reference
    assert all(rows["cnn4_leaky"][k] is None for k in NEW_COLUMNS)  # diverged: not scored
    for key, header in (
        ("test_mase", "Test MASE"),
        ("skill_lo", "Skill 95% low"),
        ("skill_hi", "Skill 95% high"),
        ("dm_stat", "DM statistic vs persistence"),
        ("dm_p", "DM p-value"),
    ):
        assert LEADERBOARD_COLUMNS[key] == header

    csv_rows = list(csv.DictReader(io.StringIO(leaderboard_csv(list(rows.values())))))
    assert set(NEW_COLUMNS) <= set(csv_rows[0])
    by_model = {r["model"]: r for r in csv_rows}
    assert float(by_model["gru_tanh_leaky"]["dm_p"]) == 0.0125
    assert float(by_model["gru_tanh_leaky"]["test_mase"]) == pytest.approx(gru["test_mase"])
    assert by_model["persistence"]["direction_accuracy"] == ""  # blank, not 0
    assert by_model["persistence"]["dm_stat"] == ""

    loaded = {r["model"]: r for r in json.loads(leaderboard_json(list(rows.values())))}
    assert loaded["persistence"]["direction_accuracy"] is None  # null
    assert loaded["gru_tanh_leaky"]["skill_hi"] == 0.125
    assert set(NEW_COLUMNS) <= set(loaded["lag"])


def _table_cells(md: str, model: str) -> dict[str, str]:
    line = next(x for x in md.splitlines() if x.startswith(f"| {model} ") or f"**{model}**" in x)
    cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
    return dict(zip(TABLE_KEYS, cells, strict=True))


def test_tables_show_undefined_direction_as_na_and_the_skill_interval():
    ev = _evaluation_with_significance()
    rows = leaderboard_rows(ev)
    md = leaderboard_markdown(rows)
    assert "Test MASE" in md.splitlines()[0] and "Skill 95% interval" in md.splitlines()[0]
    persistence = _table_cells(md, "persistence")
    assert persistence["direction_accuracy"] == "n/a"
    assert persistence["skill_interval"] == "[+0.000, +0.000]"
    gru = _table_cells(md, "gru_tanh_leaky")
    assert gru["skill_interval"] == "[-0.050, +0.125]"
    assert gru["test_mase"] == f"{rows[0]['test_mase']:.3f}"
    assert gru["direction_accuracy"].endswith("%")
    diverged = _table_cells(md, "cnn4_leaky")
    assert diverged["direction_accuracy"] == "–" and diverged["skill_interval"] == "–"
    assert _table_cells(md, "lag")["skill_interval"] == "n/a"  # scored, no interval given

    page = render_report_html(ev.meta, rows, {})
    html_rows = re.findall(r'<tr class="[^"]*">(.*?)</tr>', page, flags=re.S)
    cells = {}
    for row in html_rows:
        values = re.findall(r"<td>(.*?)</td>", row)
        cells[values[0]] = dict(zip(TABLE_KEYS, values, strict=True))
    assert cells["persistence"]["direction_accuracy"] == "n/a"
    assert cells["gru_tanh_leaky"]["skill_interval"] == "[-0.050, +0.125]"
    assert "<th>Test MASE</th>" in page and "95% interval [-0.050, +0.125]" in page
    assert format_cell("direction_accuracy", math.nan) == "n/a"


def test_describe_model():
    assert describe_model("cnn3_leaky") == ("CNN", 3, "Leaky ReLU")
    assert describe_model("lstm_tanh_relu") == ("LSTM", 1, "tanh + ReLU")
    assert describe_model("lag") == ("baseline", None, "-")


def test_html_is_self_contained_escaped_and_images_decode():
    ev = _evaluation()
    rows = leaderboard_rows(ev)
    figures = report_figures(ev, rows, None, dpi=40)
    assert set(figures) == {
        "actual_vs_predicted",
        "leaderboard",
        "error_by_horizon",
        "learning_curves",
    }
    page = render_report_html(ev.meta, rows, figures)
    for r in rows:
        assert f"<td>{r['model']}</td>" in page
    assert "fp-&lt;script&gt;" in page and "<script>" not in page
    uris = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(uris) == 4
    assert all(base64.b64decode(u).startswith(PNG_SIGNATURE) for u in uris)
    assert 'class="champion"' in page and "gru_tanh_leaky" in page


def test_seed_report_is_labelled_as_a_leak():
    ev = _evaluation("seed")
    page = render_report_html(ev.meta, leaderboard_rows(ev), {})
    assert "Seed protocol" in page and "validation" in page
    md = render_report_markdown(ev.meta, leaderboard_rows(ev), {})
    assert "leak" in md


def test_markdown_table_and_images():
    ev = _evaluation()
    rows = leaderboard_rows(ev)
    md = render_report_markdown(ev.meta, rows, {"leaderboard": PNG_SIGNATURE + b"x"}, "/r.html")
    table = [line for line in md.splitlines() if line.startswith("|")]
    assert len(table) == 2 + len(rows)
    assert "**gru_tanh_leaky** ★" in md and "](data:image/png;base64," in md and "/r.html" in md
    assert leaderboard_markdown(rows).count("\n") == len(rows) + 1


def test_artifact_keys_are_valid():
    key = artifact_key("leaderboard", "20260101T000000Z-abc_123")
    assert re.fullmatch(r"[a-z0-9-]+", key) and key.startswith("leaderboard-")


def test_tutorial_table_in_docs_matches_the_constant():
    text = (REPO / "docs" / "tutorial-results.md").read_text()
    lines = [line for line in text.splitlines() if re.match(r"^\| (CNN|LSTM|GRU|lag|linear)", line)]
    assert len(lines) == len(TUTORIAL_RESULTS)
    for line, t in zip(lines, TUTORIAL_RESULTS, strict=True):
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert float(cells[4]) == t.test_mse
        if t.val_loss is None:
            assert cells[3] == "–"
        else:
            assert float(cells[3]) == t.val_loss
            assert cells[0] == t.family and int(cells[1]) == t.layers and cells[2] == t.activation


def test_comparison_puts_tutorial_seed_and_honest_side_by_side():
    seed = [{"model": "cnn2_relu", "val_loss": 1e-4, "test_mse": 9e4, "skill": 0.1}]
    honest = [
        {"model": "cnn2_relu", "val_loss": 3e-4, "test_mse": 2e5, "skill": -0.5,
         "verdict": "worse than persistence (p=0.01)"},
        {"model": "persistence", "val_loss": 2e-4, "test_mse": 1e5, "skill": 0.0},
    ]
    rows = comparison_rows(seed, honest)
    names = [r["model"] for r in rows]
    assert names[:12] == [t.model for t in TUTORIAL_RESULTS] and "persistence" in names
    cnn = rows[0]
    assert (cnn["tutorial_test_mse"], cnn["seed_test_mse"], cnn["honest_test_mse"]) == (
        114308,
        9e4,
        2e5,
    )
    assert (cnn["seed_skill"], cnn["honest_skill"]) == (0.1, -0.5)
    assert cnn["honest_verdict"] == "worse than persistence (p=0.01)"
    page = render_comparison_html(rows, "seed-run", "honest-run")
    assert "114,308" in page and "200,000" in page and "seed-run" in page
    assert "worse than persistence (p=0.01)" in page and "Honest verdict" in page
    png = re.search(r'<img alt="skill vs persistence[^"]*" src="data:image/png;base64,([^"]+)"',
                    page)
    assert png and base64.b64decode(png.group(1))[:4] == b"\x89PNG"


def _champion(run_id, model="gru_tanh_leaky", protocol="honest"):
    return {
        "run_id": run_id,
        "protocol": protocol,
        "model": model,
        "epoch": 3,
        "checkpoint": f"/runs/{run_id}/{model}/checkpoints/epoch-003-0.1.keras",
        "dataset_id": "abc",
        "candle_fingerprint": "fp",
        "metrics": {"test": {"mse": 1.0}},
        "flow_run_id": "f1",
    }


def test_champion_registry_keeps_previous_champions(tmp_path):
    reg = ChampionRegistry(tmp_path / "reports")
    assert reg.current() is None and reg.records() == []
    reg.record(_champion("r1", "cnn2_relu"))
    reg.record(_champion("r2"))
    reg.record(_champion("s1", protocol="seed"))
    assert reg.current()["run_id"] == "r2"
    assert [r["run_id"] for r in reg.previous()] == ["r1"]
    assert reg.current("seed")["run_id"] == "s1"
    reg.record(_champion("r1", "lstm_tanh_leaky"))  # re-reporting a run replaces its record
    assert [r["run_id"] for r in reg.records()] == ["r2", "s1", "r1"]
    assert reg.current()["model"] == "lstm_tanh_leaky"
    assert not list((tmp_path / "reports").glob(".*tmp"))  # no temp files left behind


def test_champion_registry_rejects_bad_records_and_files(tmp_path):
    reg = ChampionRegistry(tmp_path)
    bad = _champion("r1")
    del bad["checkpoint"]
    with pytest.raises(ValueError, match="checkpoint"):
        reg.record(bad)
    with pytest.raises(ValueError, match="metrics"):
        reg.record({**_champion("r1"), "metrics": 3})
    reg.path.write_text("{not json")
    with pytest.raises(CorruptStoreError, match="not valid JSON") as err:
        reg.records()
    assert err.value.path == str(reg.path)


def test_describe_model_labels_every_zoo_model_as_the_tutorial_does():
    from tasks.zoo import MODEL_NAMES

    published = {t.model: (t.family, t.layers, t.activation) for t in TUTORIAL_RESULTS}
    for name in MODEL_NAMES:
        assert describe_model(name) == published[name]
    assert describe_model("persistence") == ("baseline", None, "-")
    assert describe_model("not_a_model") == ("not_a_model", None, "-")


def test_corrupt_leaderboard_and_history_name_the_file(tmp_path):
    from storage.reports import ReportStore
    from storage.runs import RunStore

    reports = ReportStore(tmp_path / "reports")
    assert reports.read_leaderboard("r1") is None
    reports.write_files("r1", {"leaderboard.json": "[{not json"})
    with pytest.raises(CorruptStoreError, match=r"leaderboard\.json.*cryptoflow report --run r1"):
        reports.read_leaderboard("r1")
    runs = RunStore(tmp_path / "runs")
    md = runs.model("r1", "cnn2_relu")
    md.path.mkdir(parents=True)
    md.history_path.write_text("epoch,loss\n1,0.1\n")
    with pytest.raises(CorruptStoreError, match=r"history\.csv: lacks columns") as err:
        runs.read_history("r1", "cnn2_relu")
    assert err.value.path == str(md.history_path)
    (runs.run_dir("r1") / "run.json").write_text("{broken")
    with pytest.raises(CorruptStoreError, match=r"run\.json"):
        runs.read_run("r1")


def test_report_reused_only_with_the_same_fingerprint(tmp_path):
    from storage.reports import ReportStore

    store = ReportStore(tmp_path)
    store.write_files("r1", {"report.html": "<html></html>\n"})
    assert store.current_report("r1", "abc") is None  # no stamp yet
    store.write_stamp("r1", "abc")
    assert store.current_report("r1", "abc") == tmp_path / "r1" / "report.html"
    assert store.current_report("r1", "def") is None
