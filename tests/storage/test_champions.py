"""The champion registry file: champions per market and protocol, the challengers the gate
kept out, version 1 files still read; the gate's settings refused naming the variable."""

from __future__ import annotations

import json

import pytest

from storage.champions import REGISTRY_FILE, ChampionRegistry, GateRule
from storage.errors import BadInputError, CorruptStoreError


def _record(run_id, model="gru_tanh_leaky", protocol="honest", symbol="BTC_USDT",
            interval="MINUTE_5"):
    return {
        "run_id": run_id,
        "protocol": protocol,
        "symbol": symbol,
        "interval": interval,
        "model": model,
        "epoch": 2,
        "checkpoint": f"/runs/{run_id}/{model}/checkpoints/epoch-002-0.1.keras",
        "dataset_id": "abc",
        "candle_fingerprint": "fp",
        "metrics": {"test": {"mse": 1.0}},
        "flow_run_id": "f1",
    }


def _file(reg: ChampionRegistry) -> dict:
    return json.loads(reg.path.read_text())


def test_promoted_and_kept_out_winners_land_in_their_lists(tmp_path):
    reg = ChampionRegistry(tmp_path / "reports")
    assert reg.current() is None and reg.records() == [] and reg.challengers() == []
    reg.record(_record("r1"), promoted=True, reason="first", evidence={"challenger_mse": 9.0})
    reg.record(_record("r2"), promoted=False, reason="loses to r1", evidence={"n_windows": 3})
    reg.record(_record("e1", symbol="ETH_USDT"), promoted=True, reason="first of ETH")

    data = _file(reg)
    assert data["version"] == 2
    assert [r["run_id"] for r in data["champions"]] == ["r1", "e1"]
    assert [r["run_id"] for r in data["challengers"]] == ["r2"]
    kept_out = data["challengers"][0]
    assert kept_out["promoted"] is False and kept_out["reason"] == "loses to r1"
    assert kept_out["evidence"] == {"n_windows": 3} and kept_out["recorded_at"]
    # the current champion of a market is its latest promoted one, not the latest challenger
    assert reg.current("honest", "BTC_USDT", "MINUTE_5")["run_id"] == "r1"
    assert reg.current("honest", "ETH_USDT", "MINUTE_5")["run_id"] == "e1"
    assert reg.current("honest", "BTC_USDT", "HOUR_1") is None
    assert reg.current("honest")["run_id"] == "e1"  # no market asked: the latest of the protocol
    assert reg.current("seed") is None

    # reporting a run again replaces its record, whichever list it was in
    reg.record(_record("r2", model="cnn2_relu"), promoted=True, reason="beats r1")
    data = _file(reg)
    assert [r["run_id"] for r in data["champions"]] == ["r1", "e1", "r2"]
    assert data["challengers"] == []
    assert reg.current("honest", "BTC_USDT", "MINUTE_5")["model"] == "cnn2_relu"
    assert [r["run_id"] for r in reg.previous("honest", "BTC_USDT", "MINUTE_5")] == ["r1"]
    reg.record(_record("r2"), promoted=False, reason="now it loses")
    assert reg.current("honest", "BTC_USDT", "MINUTE_5")["run_id"] == "r1"
    assert [r["reason"] for r in reg.challengers()] == ["now it loses"]
    assert not list(reg.root.glob(".*tmp"))  # written atomically, no temporaries left


def test_a_version_1_file_still_reads_and_is_kept_on_the_next_write(tmp_path):
    reg = ChampionRegistry(tmp_path)
    old = {k: v for k, v in _record("old-run").items() if k not in ("symbol", "interval")}
    old["recorded_at"] = "2025-01-01T00:00:00+00:00"
    reg.path.write_text(json.dumps({"version": 1, "champions": [old]}))

    assert reg.records() == [old] and reg.challengers() == []
    assert reg.current("honest") == old
    assert reg.current("honest", "BTC_USDT", "MINUTE_5") is None  # its market is not known here
    reg.record(_record("new-run"), promoted=False, reason="worse")
    data = _file(reg)
    assert data["version"] == 2 and data["champions"] == [old]
    assert [r["run_id"] for r in data["challengers"]] == ["new-run"]


def test_bad_records_and_files_are_refused(tmp_path):
    reg = ChampionRegistry(tmp_path)
    bad = _record("r1")
    del bad["checkpoint"]
    with pytest.raises(BadInputError, match="checkpoint"):
        reg.record(bad)
    with pytest.raises(BadInputError, match="evidence"):
        reg.record(_record("r1"), evidence=[1, 2])  # type: ignore[arg-type]
    assert not reg.path.exists()
    reg.path.write_text(json.dumps({"version": 7, "champions": []}))
    with pytest.raises(CorruptStoreError, match="version 7") as err:
        reg.records()
    assert err.value.path == str(tmp_path / REGISTRY_FILE)
    reg.path.write_text(json.dumps({"version": 2, "champions": [], "challengers": {}}))
    with pytest.raises(CorruptStoreError, match="challengers"):
        reg.challengers()


# ------------------------------------------------------------------------ the gate's settings


def test_gate_settings_default_and_from_the_environment(monkeypatch):
    from storage.settings import settings

    monkeypatch.delenv("CRYPTOFLOW_CHAMPION_GATE", raising=False)
    monkeypatch.delenv("CRYPTOFLOW_CHAMPION_MARGIN", raising=False)
    assert settings().champion_gate is GateRule.BEAT_BOTH and settings().champion_margin == 0.0
    monkeypatch.setenv("CRYPTOFLOW_CHAMPION_GATE", "beat-persistence")
    monkeypatch.setenv("CRYPTOFLOW_CHAMPION_MARGIN", "0.05")
    assert settings().champion_gate is GateRule.BEAT_PERSISTENCE
    assert settings().champion_margin == 0.05


@pytest.mark.parametrize(
    ("name", "value"),
    [("CRYPTOFLOW_CHAMPION_GATE", "beat-everyone"), ("CRYPTOFLOW_CHAMPION_MARGIN", "-0.1"),
     ("CRYPTOFLOW_CHAMPION_MARGIN", "1"), ("CRYPTOFLOW_CHAMPION_MARGIN", "lots")],
)
def test_bad_gate_settings_are_refused_naming_the_variable(monkeypatch, capsys, name, value):
    from cryptoflow.cli import main as cli_main
    from storage.settings import settings

    monkeypatch.setenv(name, value)
    with pytest.raises(BadInputError, match=name):
        settings()
    assert cli_main(["settings"]) == 2
    assert name in capsys.readouterr().err
