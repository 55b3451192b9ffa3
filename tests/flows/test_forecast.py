"""The forecast flow end to end: real candles in a candle store, a real window file, a champion
trained with real Keras (1 epoch) and recorded in the registry, a real Prefect API."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.support.windows import real_candles

PAST, FUTURE, ROWS = 32, 4, 1200
SYMBOL, INTERVAL = "BTC_USDT", "MINUTE_5"
MODEL = "cnn2_relu"


def _make_champion(data_dir: Path, scaler: str = "minmax", features=("close",)) -> dict:
    """Train a 1-epoch champion on windows cut from ROWS real candles and record it; the candle
    store holds all but the last K of them (so the newest window is the file's last)."""
    from storage.candles import CandleStore
    from storage.champions import ChampionRegistry
    from storage.layout import DataLayout
    from storage.runs import RunStore, new_run_id
    from tasks.training.loop import train_model
    from tasks.windows import WindowSpec, write_windows

    layout = DataLayout.at(data_dir)
    candles = real_candles(ROWS)
    spec = WindowSpec(protocol="honest", past=PAST, future=FUTURE, stride=1, scaler=scaler,
                      features=features)
    summary = write_windows(candles, SYMBOL, INTERVAL, spec, layout.windows)
    runs = RunStore(layout.runs)
    run_id = new_run_id()
    train_model(Path(summary["path"]), MODEL, runs.model_dir(run_id, MODEL), epochs=1,
                batch_size=64, seed=0, threads=1)
    runs.write_run(run_id, {"dataset_id": summary["dataset_id"], "dataset_path": summary["path"],
                            "protocol": "honest", "models": [MODEL], "flow_run_id": None})
    (checkpoint,) = runs.checkpoints(run_id, MODEL).values()
    ChampionRegistry(layout.reports).record({
        "run_id": run_id, "protocol": "honest", "symbol": SYMBOL, "interval": INTERVAL,
        "model": MODEL, "epoch": 1, "checkpoint": str(checkpoint),
        "dataset_id": summary["dataset_id"], "candle_fingerprint": "test", "metrics": {},
        "flow_run_id": None,
    })
    CandleStore(layout.candles).append(SYMBOL, INTERVAL, candles.iloc[: ROWS - FUTURE])
    return {"data_dir": data_dir, "run_id": run_id, "dataset": Path(summary["path"]),
            "checkpoint": Path(checkpoint), "candles": candles,
            "dataset_id": summary["dataset_id"]}


@pytest.fixture(scope="module")
def champion(tmp_path_factory):
    """A data dir with a MinMax champion of BTC_USDT MINUTE_5 (see ``_make_champion``)."""
    return _make_champion(tmp_path_factory.mktemp("forecast") / "data")


def _forecast_files(data_dir: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in sorted((data_dir / "forecasts").rglob("*.parquet"))}


@pytest.mark.slow
def test_forecast_is_the_champion_on_the_window_training_built(champion, prefect_api):
    from flows.forecast import forecast
    from storage.forecasts import ForecastStore
    from storage.layout import DataLayout
    from tasks.selection import load_checkpoint
    from tasks.windows import open_dataset

    data_dir = champion["data_dir"]
    summary = forecast(symbols=[SYMBOL], intervals=[INTERVAL], data_dir=str(data_dir))
    assert summary["added"] == 2 * FUTURE and summary["champion"] == MODEL
    store = ForecastStore(DataLayout.at(data_dir).forecasts)
    rows = store.read(SYMBOL, INTERVAL)
    assert len(rows) == 2 * FUTURE and set(rows["model"]) == {MODEL, "persistence"}

    # by hand: the file's last window (inputs end K candles before the file's end) predicted
    # by the checkpoint and inverted with the file's scaler
    with open_dataset(str(champion["dataset"])) as ds:
        x_test, _ = ds.split_arrays("test")
        in_times, out_times = ds.split_times("test")
        f = ds.target_feature
        net = load_checkpoint(champion["checkpoint"])
        raw = net.predict(x_test[-1:], verbose=0)  # (1, K, F): a CNN predicts every feature
        expected = ds.scaler.target_to_price(raw[:, :, f], f)[0]
    mine = rows[rows["model"] == MODEL].sort_values("step")
    np.testing.assert_allclose(mine["predicted_close"].to_numpy(), expected, rtol=1e-6)
    assert mine["step"].tolist() == list(range(1, FUTURE + 1))
    issued = pd.Timestamp(int(in_times[-1, -1]), unit="ms", tz="UTC")
    assert (rows["issued_at"] == issued).all()
    assert str(summary["issued_at"]).startswith(issued.strftime("%Y-%m-%dT%H:%M:%S"))
    np.testing.assert_array_equal(
        mine["target_time"].astype("int64").to_numpy(), out_times[-1]
    )
    assert set(mine["epoch"]) == {1} and set(mine["run_id"]) == {champion["run_id"]}
    assert set(rows["dataset_id"]) == {champion["dataset_id"]}
    # persistence: the last input close, every step, for the same target times
    last_close = champion["candles"]["close"].iloc[ROWS - FUTURE - 1]
    naive = rows[rows["model"] == "persistence"].sort_values("step")
    assert (naive["predicted_close"] == last_close).all() and naive["epoch"].isna().all()
    assert naive["target_time"].tolist() == mine["target_time"].tolist()

    # a re-run with no new candle issues nothing twice: the store's bytes are unchanged
    before = _forecast_files(data_dir)
    again = forecast(symbols=[SYMBOL], intervals=[INTERVAL], data_dir=str(data_dir))
    assert again["added"] == 0 and again["skipped_issues"] == 2
    assert _forecast_files(data_dir) == before


@pytest.mark.slow
def test_cli_prints_the_latest_forecast_and_refuses_without_a_champion(
    champion, prefect_api, capsys, tmp_path
):
    from cryptoflow.cli import main

    data_dir = str(champion["data_dir"])
    assert main(["forecast", "--symbol", SYMBOL, "--interval", INTERVAL, "--data-dir", data_dir,
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["champion"] == MODEL and len(out["forecast"]) == FUTURE
    last_close = champion["candles"]["close"].iloc[ROWS - FUTURE - 1]
    assert all(r["persistence"] == last_close for r in out["forecast"])
    assert [r["step"] for r in out["forecast"]] == list(range(1, FUTURE + 1))
    assert main(["forecast", "--data-dir", data_dir]) == 0
    table = capsys.readouterr().out.splitlines()
    assert MODEL in table[0] and "persistence" in table[1] and len(table) == 3 + FUTURE
    assert table[-1].startswith("live: BTC_USDT MINUTE_5: nothing matured yet to score")

    # no champion for this market: one clear line saying how to get one, exit 2, nothing written
    empty = tmp_path / "empty"
    assert main(["forecast", "--symbol", "ETH_USDT", "--data-dir", str(empty)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no honest champion for ETH_USDT MINUTE_5" in err[0]
    assert "cryptoflow run --symbol ETH_USDT --interval MINUTE_5" in err[0]
    assert not (empty / "forecasts").exists()
    # a bad symbol is refused by the flow's signature before any flow run or write
    assert main(["forecast", "--symbol", "../etc", "--data-dir", str(empty)]) == 2
    assert "symbol" in capsys.readouterr().err
    assert not (empty / "forecasts").exists()


@pytest.mark.slow
def test_new_candles_issue_a_new_forecast_and_a_missing_checkpoint_is_refused(
    champion, tmp_path
):
    from storage.candles import CandleStore
    from storage.errors import CorruptStoreError
    from storage.layout import DataLayout
    from tasks.forecast import issue_forecast

    data_dir = tmp_path / "data"
    shutil.copytree(champion["data_dir"], data_dir)
    # the champion record names the original checkpoint path: the copy must find its own
    shutil.move(champion["checkpoint"], tmp_path / "away.keras")
    try:
        CandleStore(DataLayout.at(data_dir).candles).append(
            SYMBOL, INTERVAL, champion["candles"].iloc[ROWS - FUTURE:]
        )
        issue = issue_forecast(data_dir, SYMBOL, INTERVAL)
        newest = champion["candles"]["open_time"].iloc[-1]
        assert issue.issued_at == newest and len(issue.rows) == 2 * FUTURE
        assert issue.checkpoint.is_relative_to(data_dir)
        for ckpt in (data_dir / "runs").rglob("*.keras"):
            ckpt.unlink()
        with pytest.raises(CorruptStoreError, match="champion's checkpoint") as err:
            issue_forecast(data_dir, SYMBOL, INTERVAL)
        assert "cryptoflow run --symbol BTC_USDT --interval MINUTE_5" in str(err.value)
    finally:
        shutil.move(tmp_path / "away.keras", champion["checkpoint"])


@pytest.mark.slow
def test_a_per_window_champion_is_inverted_with_the_windows_last_close(tmp_path):
    """Under the ``window`` scaler (residual heads, log returns as a feature) the forecast is the
    model's output on the window divided by its last close, times that close."""
    from tasks.forecast import issue_forecast
    from tasks.selection import load_checkpoint
    from tasks.windows import open_dataset

    made = _make_champion(tmp_path / "data", scaler="window",
                          features=("close", "volume_quote", "log_return"))
    issue = issue_forecast(made["data_dir"], SYMBOL, INTERVAL)
    with open_dataset(str(made["dataset"])) as ds:
        x_test, _ = ds.split_arrays("test")
        anchor = ds.split_anchors("test")[-1]
        f = ds.target_feature
        raw = load_checkpoint(made["checkpoint"]).predict(x_test[-1:], verbose=0)
    np.testing.assert_array_equal(issue.window.x[0], x_test[-1])
    last_close = made["candles"]["close"].iloc[ROWS - FUTURE - 1]
    assert issue.window.anchor == anchor == last_close
    rows = issue.rows.set_index(["model", "step"])["predicted_close"]
    np.testing.assert_allclose(rows[MODEL].to_numpy(), raw[0, :, f] * anchor, rtol=1e-6)
    assert (rows["persistence"] == last_close).all()
