"""The champion gate: crafted results through the rule and the registry file; incumbents that
cannot be scored (real window files); the report's sentence; and end to end, a real incumbent
checkpoint scored on a challenger's windows, checked against our own prediction of it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from storage.champions import ChampionRegistry, GateRule
from storage.errors import BadInputError
from storage.runs import RunStore
from tasks.report.champion import champion_record, record_champion
from tasks.report.gate import (
    IncumbentScore,
    check_gate,
    decide,
    format_mse,
    judge_champion,
)
from tests.support.reports import _evaluation, _metrics
from tests.support.windows import write_real_windows

WINNER = "gru_tanh_leaky"  # the winner of the crafted evaluation


def _run(run_id: str, winner_offset: float, persistence_offset: float = 3.0, **meta):
    """A crafted evaluated run whose winner misses by ``winner_offset`` on every window (test
    MSE = offset²) and persistence by ``persistence_offset``."""
    ev = _evaluation()
    ev.run_id = run_id
    ev.meta = {**ev.meta, "run_id": run_id, **meta}
    ev.entry(WINNER).evaluation = _metrics(winner_offset)
    ev.entry("persistence").evaluation = _metrics(persistence_offset)
    return ev


def _judge(reg: ChampionRegistry, ev, rule="beat-both", margin=0.0, incumbent_mse=None):
    """What record_champion does, with the incumbent's score crafted instead of predicted."""
    current = reg.current(ev.protocol, ev.meta["symbol"], ev.meta["interval"])
    incumbent = None
    if current is not None:
        incumbent = IncumbentScore(current["run_id"], current["model"], incumbent_mse, 6)
    decision = judge_champion(ev, incumbent, rule, margin)
    reg.record(champion_record(ev, "flow-1"), promoted=decision.promoted,
               reason=decision.reason, evidence=decision.evidence)
    return decision


def _state(reg: ChampionRegistry) -> tuple[str | None, list[str]]:
    data = json.loads(reg.path.read_text())
    market = [r for r in data["champions"] if r["symbol"] == "BTC_USDT"]
    return (market[-1]["run_id"] if market else None), [r["run_id"] for r in data["challengers"]]


def test_the_rule_on_numbers():
    assert decide(4.0, 9.0, None, "beat-both", 0.0)[0]
    assert not decide(9.0, 9.0, None, "beat-both", 0.0)[0]  # a tie is no improvement
    scored = IncumbentScore("r1", "cnn2_relu", 5.0, 6)
    assert decide(4.0, 9.0, scored, "beat-both", 0.0)[0]
    assert not decide(6.0, 9.0, scored, "beat-both", 0.0)[0]
    assert decide(6.0, 9.0, scored, "beat-persistence", 0.0)[0]
    assert decide(99.0, 9.0, scored, "off", 0.0)[0]
    assert not decide(float("nan"), 9.0, None, "beat-both", 0.0)[0]
    # margin: below (1 - margin) x the opponent's MSE
    assert decide(4.4, 9.0, scored, "beat-both", 0.1)[0]        # 4.4 < 4.5
    assert not decide(4.6, 9.0, scored, "beat-both", 0.1)[0]    # 4.6 >= 4.5
    assert not decide(4.0, 4.4, None, "beat-both", 0.1)[0]      # 4.0 >= 3.96
    promoted, reason = decide(4.0, 9.0, IncumbentScore("r1", "m", problem="gone"), "beat-both", 0)
    assert promoted and "could not be scored" in reason and "persistence only" in reason
    assert format_mse(12.3e6) == "12.3 M" and format_mse(12_345.0) == "12.3 k"
    assert format_mse(98.04) == "98" and format_mse(None) == "n/a"


def test_bad_rule_or_margin_is_refused_naming_the_setting():
    assert check_gate("BEAT-BOTH", 0) == (GateRule.BEAT_BOTH, 0.0)
    with pytest.raises(BadInputError, match="CRYPTOFLOW_CHAMPION_GATE"):
        check_gate("best", 0.0)
    for margin in (-0.01, 1.0, float("nan"), "x"):
        with pytest.raises(BadInputError, match="CRYPTOFLOW_CHAMPION_MARGIN"):
            check_gate("beat-both", margin)


def test_crafted_runs_through_the_gate_and_the_registry_file(tmp_path):
    reg = ChampionRegistry(tmp_path / "reports")

    # the first winner that beats persistence becomes the market's champion
    d = _judge(reg, _run("r1", 2.0))                   # test MSE 4 vs persistence 9
    assert d.promoted and "first champion" in d.reason
    assert _state(reg) == ("r1", [])
    first = reg.current("honest", "BTC_USDT", "MINUTE_5")
    assert first["evidence"]["challenger_mse"] == pytest.approx(4.0)
    assert first["evidence"]["persistence_mse"] == pytest.approx(9.0)
    assert first["evidence"]["judged_against"] == ["persistence"]

    # worse than persistence: kept out, the champion stays
    d = _judge(reg, _run("r2", 4.0), incumbent_mse=4.0)  # 16 vs persistence 9
    assert not d.promoted
    assert d.reason == "test MSE 16 USDT² not below persistence's 9"
    assert "stays gru_tanh_leaky (run r1)" in d.sentence
    assert _state(reg) == ("r1", ["r2"])

    # better than persistence, worse than the champion on the same windows: kept out
    d = _judge(reg, _run("r3", 2.5), incumbent_mse=4.0)  # 6.25 vs champion 4
    assert not d.promoted
    assert d.reason == "loses to current champion gru_tanh_leaky (run r1): 6.25 vs 4 USDT²"
    assert _state(reg) == ("r1", ["r2", "r3"])
    out = reg.challengers()[-1]
    assert out["reason"] == d.reason and out["evidence"]["incumbent_run_id"] == "r1"
    assert out["evidence"]["incumbent_mse"] == 4.0 and out["evidence"]["n_windows"] == 6
    assert out["evidence"]["rule"] == "beat-both" and out["evidence"]["margin"] == 0.0

    # better than both: promoted
    d = _judge(reg, _run("r4", 1.0), incumbent_mse=4.0)
    assert d.promoted and "and the current champion gru_tanh_leaky (run r1)'s 4" in d.reason
    assert d.evidence["judged_against"] == ["persistence", "incumbent"]
    assert _state(reg) == ("r4", ["r2", "r3"])

    # the margin: 0.81 is not below 0.9 x 0.85, and is below 0.96 x 0.85
    d = _judge(reg, _run("r5", 0.9), margin=0.1, incumbent_mse=0.85)
    assert not d.promoted and "margin 0.1" in d.reason
    assert _state(reg) == ("r4", ["r2", "r3", "r5"])
    d = _judge(reg, _run("r5", 0.9), margin=0.04, incumbent_mse=0.85)
    assert d.promoted and "(1 − 0.04) × persistence's" in d.reason
    assert _state(reg) == ("r5", ["r2", "r3"])  # reported again: moved, not duplicated

    # gate off: promoted whatever the numbers
    d = _judge(reg, _run("r6", 5.0), rule="off", incumbent_mse=0.1)
    assert d.promoted and d.reason.startswith("gate off (CRYPTOFLOW_CHAMPION_GATE=off)")
    assert d.evidence["judged_against"] == []
    assert _state(reg) == ("r6", ["r2", "r3"])

    # beat-persistence: the champion's score is evidence, not a bar
    d = _judge(reg, _run("r7", 2.0), rule="beat-persistence", incumbent_mse=1.0)
    assert d.promoted and "not compared" in d.reason and d.evidence["incumbent_mse"] == 1.0
    assert _state(reg) == ("r7", ["r2", "r3"])

    # another market has its own champion
    d = _judge(reg, _run("e1", 2.0, symbol="ETH_USDT"), incumbent_mse=0.1)
    assert d.promoted and "first champion" in d.reason
    assert reg.current("honest", "ETH_USDT", "MINUTE_5")["run_id"] == "e1"
    assert _state(reg) == ("r7", ["r2", "r3"])


def test_the_report_says_whether_the_winner_was_promoted_and_why():
    from tasks.report.markdown import render_report_markdown
    from tasks.report.render import render_report

    ev = _run("r2", 4.0)
    decision = judge_champion(ev, IncumbentScore("r1", "cnn2_relu", 4.0, 6), "beat-both", 0.0)
    rendered = render_report(ev, None, None, decision)
    assert rendered["meta"]["champion_gate"] == {
        "promoted": False, "sentence": decision.sentence, "rule": "beat-both", "margin": 0.0}
    assert decision.sentence == (
        "gru_tanh_leaky was kept out; the champion of BTC_USDT MINUTE_5 (honest) stays "
        "cnn2_relu (run r1): test MSE 16 USDT² not below persistence's 9."
    )
    assert "Champion gate" in rendered["html"] and "was kept out" in rendered["html"]
    md = render_report_markdown(rendered["meta"], rendered["rows"], {})
    assert decision.sentence in md
    assert "Champion gate" not in render_report(ev, None, None)["html"]  # no decision, no line


# ------------------------------------------------------------------------ real window files


@pytest.fixture(scope="module")
def windows(tmp_path_factory):
    root = tmp_path_factory.mktemp("gate-windows")
    return {"w64": write_real_windows(root / "w64.h5", 64, 4, stride=16),
            "w32": write_real_windows(root / "w32.h5", 32, 4, stride=16)}


def _incumbent_run(data_dir: Path, run_id: str, window_file: Path, checkpoint: str) -> dict:
    """A champion's run folder (its run.json names its windows) and its v2 record."""
    RunStore(data_dir / "runs").write_run(
        run_id, {"dataset_path": str(window_file), "protocol": "honest", "models": ["cnn2_relu"]})
    record = champion_record(_run(run_id, 1.0), "flow-0")
    return {**record, "model": "cnn2_relu", "checkpoint": checkpoint}


def test_an_incumbent_that_cannot_be_scored_is_named_and_persistence_judges(windows, tmp_path):
    data_dir = tmp_path / "data"
    reg = ChampionRegistry(data_dir / "reports")
    ev = _run("challenger", 2.0, dataset_path=str(windows["w64"]))

    # missing checkpoint, same windows
    reg.record(_incumbent_run(data_dir, "gone", windows["w64"], str(tmp_path / "nope.keras")))
    d = record_champion(str(data_dir), ev, "flow-2", "beat-both", 0.0)
    assert d.promoted and "could not be scored" in d.reason and "persistence only" in d.reason
    assert d.evidence["incumbent_run_id"] == "gone" and d.evidence["incumbent_mse"] is None
    assert "checkpoint did not load" in d.evidence["incumbent_problem"]
    assert "nope.keras" in d.evidence["incumbent_problem"]
    assert d.evidence["judged_against"] == ["persistence"]
    assert reg.current("honest", "BTC_USDT", "MINUTE_5")["run_id"] == "challenger"

    # another input shape: (32, 1) windows cannot feed (64, 1)
    reg.record(_incumbent_run(data_dir, "short", windows["w32"], str(tmp_path / "x.keras")))
    d = record_champion(str(data_dir), _run("c2", 2.0, dataset_path=str(windows["w64"])),
                        None, "beat-both", 0.0)
    assert d.evidence["incumbent_run_id"] == "short"
    assert d.evidence["incumbent_problem"] == "its input shape (32, 1) differs from these " \
        "windows' (64, 1)"
    # and its run's windows gone altogether
    reg.record(_incumbent_run(data_dir, "lost", tmp_path / "gone.h5", str(tmp_path / "x.keras")))
    d = record_champion(str(data_dir), _run("c3", 2.0, dataset_path=str(windows["w64"])),
                        None, "beat-both", 0.0)
    assert d.evidence["incumbent_problem"] == "its run's window file is missing"
    assert d.promoted and reg.current("honest", "BTC_USDT", "MINUTE_5")["run_id"] == "c3"
    # a winner worse than persistence is kept out even then, and the champion stays
    d = record_champion(str(data_dir), _run("c4", 9.0, dataset_path=str(windows["w64"])),
                        None, "beat-both", 0.0)
    assert not d.promoted and reg.current("honest", "BTC_USDT", "MINUTE_5")["run_id"] == "c3"
    assert [r["run_id"] for r in reg.challengers()] == ["c4"]


def test_a_version_1_champion_is_the_incumbent_of_the_market_its_windows_say(windows, tmp_path):
    data_dir = tmp_path / "data"
    reg = ChampionRegistry(data_dir / "reports")
    old = _incumbent_run(data_dir, "old", windows["w64"], str(tmp_path / "old.keras"))
    old = {k: v for k, v in old.items() if k not in ("symbol", "interval")}
    reg.path.parent.mkdir(parents=True)
    reg.path.write_text(json.dumps({"version": 1, "champions": [old]}))

    d = record_champion(str(data_dir), _run("eth", 2.0, symbol="ETH_USDT"), None, "beat-both", 0)
    assert d.promoted and d.evidence["incumbent_run_id"] is None  # not ETH's champion
    d = record_champion(str(data_dir), _run("btc", 9.0, dataset_path=str(windows["w64"])),
                        None, "beat-both", 0)
    assert not d.promoted and d.evidence["incumbent_run_id"] == "old"  # BTC_USDT MINUTE_5's
    data = json.loads(reg.path.read_text())
    assert data["version"] == 2 and data["champions"][0] == old
    assert [r["run_id"] for r in data["challengers"]] == ["btc"]


# ------------------------------------------------------------------------ end to end, trained


def _train_run(data_dir: Path, run_id: str, window_file: Path):
    """cnn2_relu trained one epoch on ``window_file`` into run ``run_id``; its evaluation."""
    from tasks.evaluation import evaluate_run
    from tasks.training.loop import train_model

    store = RunStore(data_dir / "runs")
    train_model(window_file, "cnn2_relu", store.model_dir(run_id, "cnn2_relu"), epochs=1,
                batch_size=32, seed=0, threads=1)
    store.write_run(run_id, {"dataset_id": window_file.stem, "dataset_path": str(window_file),
                             "protocol": "honest", "models": ["cnn2_relu"]})
    return evaluate_run(data_dir, run_id)


def _own_test_mse(checkpoint: str, own_windows: Path, windows_file: Path) -> tuple[float, int]:
    """The checkpoint predicted by hand on the test windows of ``windows_file``: unscaled
    inputs scaled by its own run's scaler, forecasts back to prices, MSE against the closes."""
    from tasks.selection import load_checkpoint
    from tasks.windows import open_dataset

    own, ds = open_dataset(str(own_windows)), open_dataset(str(windows_file))
    target = ds.target_feature
    x, y = ds.split_originals("test")
    raw = load_checkpoint(Path(checkpoint)).predict(own.scaler.transform(x), verbose=0)
    predicted = raw[:, :, 0] if raw.shape[2] == 1 else raw[:, :, target]
    prices = own.scaler.inverse_transform(predicted, feature=target)
    mse = float(np.mean((prices - y[:, :, target]) ** 2))
    own.close()
    ds.close()
    return mse, len(x)


@pytest.mark.slow
def test_a_real_incumbent_is_scored_on_the_challengers_windows(tmp_path):
    from tasks.windows import open_dataset

    data_dir = tmp_path / "data"
    w_a = write_real_windows(data_dir / "windows" / "wa.h5", 64, 4, stride=16, rows=3000)
    w_b = write_real_windows(data_dir / "windows" / "wb.h5", 64, 4, stride=64, rows=None)
    reg = ChampionRegistry(data_dir / "reports")

    ev_a = _train_run(data_dir, "run-a", w_a)
    d = record_champion(str(data_dir), ev_a, None, "off", 0.0)
    assert d.promoted and reg.current("honest", "BTC_USDT", "MINUTE_5")["run_id"] == "run-a"
    checkpoint = ev_a.entry("cnn2_relu").checkpoint

    # the same checkpoint as a challenger on the same windows: its score equals the incumbent's
    # own leaderboard score, a tie, so it is kept out (by persistence or the champion)
    same = _evaluation_of(ev_a, "run-a-again")
    d = record_champion(str(data_dir), same, None, "beat-both", 0.0)
    assert d.evidence["incumbent_run_id"] == "run-a" and d.evidence["incumbent_problem"] is None
    own_score = ev_a.entry("cnn2_relu").evaluation.mse
    assert d.evidence["incumbent_mse"] == pytest.approx(own_score, rel=1e-9)
    assert d.evidence["challenger_mse"] == pytest.approx(own_score, rel=1e-9)
    assert not d.promoted  # no better than itself
    assert d.reason.startswith("loses to current champion cnn2_relu (run run-a)") \
        or "not below persistence" in d.reason
    assert reg.current("honest", "BTC_USDT", "MINUTE_5")["run_id"] == "run-a"

    # another window file of the same market, its MinMax scaler fit on other training rows:
    # the incumbent is fed its own scale, and its MSE is ours by hand on those test windows
    ev_b = _train_run(data_dir, "run-b", w_b)
    with open_dataset(str(w_a)) as a, open_dataset(str(w_b)) as b:
        assert a.scaler.kind == b.scaler.kind and a.scaler != b.scaler
    d = record_champion(str(data_dir), ev_b, "flow-b", "beat-both", 0.0)
    mine, n = _own_test_mse(checkpoint, w_a, w_b)
    ev = d.evidence
    assert ev["incumbent_run_id"] == "run-a" and ev["incumbent_problem"] is None
    assert ev["incumbent_mse"] == pytest.approx(mine, rel=1e-6)
    assert ev["n_windows"] == n == ev_b.meta["n_eval"] and ev["eval_split"] == "test"
    assert ev["challenger_mse"] == pytest.approx(ev_b.entry("cnn2_relu").evaluation.mse)
    assert ev["persistence_mse"] == pytest.approx(ev_b.entry("persistence").evaluation.mse)
    expected = ev["challenger_mse"] < min(ev["persistence_mse"], mine)
    assert d.promoted is expected
    current = reg.current("honest", "BTC_USDT", "MINUTE_5")
    kept_out = {r["run_id"]: r for r in reg.challengers()}
    if expected:
        assert current["run_id"] == "run-b" and current["evidence"] == ev
    else:
        assert current["run_id"] == "run-a" and kept_out["run-b"]["reason"] == d.reason
        assert kept_out["run-b"]["evidence"] == ev


def _evaluation_of(ev, run_id: str):
    """The same evaluated run under another run id (its winner: the same checkpoint)."""
    import dataclasses

    return dataclasses.replace(ev, run_id=run_id, meta={**ev.meta, "run_id": run_id})
