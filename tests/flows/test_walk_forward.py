"""Walk-forward end to end: the pipeline with ``folds=2`` against the replay of recorded candles,
a real Prefect API, real Keras training (1 epoch). Each fold is its own window file, run and
report; the verdict page agrees with the folds' leaderboards; only the last fold's winner goes
through the champion gate; a second run trains nothing again."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from storage.recorded import load_recorded
from tests.support.paths import shared_file
from tests.support.realdata import POLONIEX_5M

ROWS = 3000
PARAMS = {"past": 32, "future": 4, "stride": 4, "scaler": "window", "folds": 2,
          "models": ["cnn2_relu"], "epochs": 1, "batch_size": 128, "parallel": 1,
          "start": "2017-07-14"}


@pytest.fixture(scope="module")
def candles():
    return load_recorded(shared_file(POLONIEX_5M)).iloc[:ROWS]


def _histories(data: Path) -> dict[str, float]:
    return {str(p): p.stat().st_mtime_ns for p in sorted((data / "runs").rglob("history.csv"))}


@pytest.mark.slow
def test_pipeline_with_two_folds(prefect_api, data_dir, candles, monkeypatch, capsys):
    from cryptoflow.replay import ReplayServer
    from flows.pipeline import pipeline
    from storage.champions import ChampionRegistry
    from storage.layout import DataLayout
    from storage.reports import ReportStore

    monkeypatch.setenv("CRYPTOFLOW_MAX_REQUESTS_PER_SECOND", "0")
    layout = DataLayout.at(data_dir)
    with ReplayServer(candles) as srv:
        result = pipeline(base_url=srv.url, data_dir=str(data_dir), **PARAMS)
        first = _histories(data_dir)
        again = pipeline(base_url=srv.url, data_dir=str(data_dir), **PARAMS)

    runs = result["run_ids"]
    assert len(runs) == 2 and len(set(runs)) == 2 and len(set(result["datasets"])) == 2
    assert again["run_ids"] == runs and _histories(data_dir) == first  # nothing trained again
    summary = json.loads(Path(result["walk_forward"]).with_suffix(".json").read_text())
    assert Path(result["walk_forward"]).with_suffix(".png").read_bytes()[:4] == b"\x89PNG"
    folds = summary["folds"]
    assert [f["fold"] for f in folds] == [0, 1] and [f["run_id"] for f in folds] == runs
    assert folds[0]["test_end_ms"] < folds[1]["test_start_ms"]  # consecutive test blocks
    store = ReportStore(layout.reports)
    boards = [{r["model"]: r for r in store.read_leaderboard(run)} for run in runs]
    for row in summary["rows"]:
        skills = [b[row["model"]]["skill"] for b in boards]
        assert [f["skill"] for f in row["per_fold"]] == skills
        assert row["mean_skill"] == pytest.approx(np.mean(skills))
        assert row["mean_skill_lo"] < row["mean_skill"] < row["mean_skill_hi"] or (
            skills[0] == skills[1])
    # only the last fold's winner was judged: fold 0's run is in neither list of the registry
    registry = json.loads((layout.reports / "champions.json").read_text())
    judged = {r["run_id"] for r in registry["champions"] + registry.get("challengers", [])}
    assert judged == {runs[1]}
    assert ChampionRegistry(layout.reports).records() is not None
    html = Path(result["reports"][0]).read_text()
    assert "only the last fold" in html and "Walk-forward fold 1 of 2." in html
    last = Path(result["reports"][1])
    link = f'href="../walk-forward/{runs[1]}.html"'
    assert link in last.read_text()
    assert (last.parent / ".." / "walk-forward" / f"{runs[1]}.html").resolve() == Path(
        result["walk_forward"]).resolve()
    # the same page from the CLI, over the fold runs; a run that does not exist: exit 2
    from cryptoflow.cli import main

    capsys.readouterr()
    assert main(["report", "--walk-forward", *runs, "--data-dir", str(data_dir)]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == result["walk_forward"]
    assert main(["report", "--walk-forward", runs[0], "nope-run", "--data-dir",
                 str(data_dir)]) == 2
    assert "nope-run" in capsys.readouterr().err

