"""The report end to end on a short real run: real candles, real window file, real Keras
training (2 epochs), a real Prefect API. Plus leaderboard/rendering units and bad input."""

from __future__ import annotations

import asyncio
import base64
import csv
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest

from tests.support.paths import shared_file

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
REAL_FILE = "poloniex-USDT_BTC-5m-2017-07-14--2017-08-09.csv"
HONEST_MODELS = ("cnn2_relu", "gru_tanh_leaky")


def _make_run(data_dir: Path, protocol: str, models: tuple[str, ...], stride: int | None):
    """Cut real candles into windows and train ``models`` for 2 epochs into one run."""
    from storage.layout import DataLayout
    from storage.recorded import load_recorded
    from storage.runs import RunStore, new_run_id
    from tasks.training.loop import train_model
    from tasks.windows import WindowSpec, write_windows

    layout = DataLayout.at(data_dir)
    candles = load_recorded(shared_file(REAL_FILE))
    spec = WindowSpec(protocol=protocol, past=256, future=16, stride=stride)
    summary = write_windows(candles, "BTC_USDT", "MINUTE_5", spec, layout.windows)
    store = RunStore(layout.runs)
    run_id = new_run_id()
    for model in models:
        train_model(
            Path(summary["path"]),
            model,
            store.model_dir(run_id, model),
            epochs=2,
            batch_size=32,
            seed=0,
            threads=1,
        )
    store.write_run(
        run_id,
        {
            "dataset_id": summary["dataset_id"],
            "dataset_path": summary["path"],
            "protocol": protocol,
            "models": list(models),
            "flow_run_id": None,
        },
    )
    return run_id, Path(summary["path"])


@pytest.fixture(scope="module")
def real_runs(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("report") / "data"
    data_dir.mkdir()
    seed_run, _ = _make_run(data_dir, "seed", ("cnn2_relu",), None)
    honest_run, ds_path = _make_run(data_dir, "honest", HONEST_MODELS, 16)
    return {"data_dir": data_dir, "seed": seed_run, "honest": honest_run, "dataset": ds_path}


# ------------------------------------------------------------------------ real run, no Prefect


@pytest.mark.slow
def test_selection_on_a_real_run_reproduces_the_chosen_epoch(real_runs):
    from storage.layout import DataLayout
    from storage.runs import RunStore
    from tasks.evaluation import evaluate_run
    from tasks.selection import load_checkpoint
    from tasks.windows import open_dataset
    from tasks.zoo import model_targets

    data_dir, run_id = real_runs["data_dir"], real_runs["honest"]
    ev = evaluate_run(data_dir, run_id)
    store = RunStore(DataLayout.at(data_dir).runs)
    ds = open_dataset(str(real_runs["dataset"]))
    x_val, y_val = ds.split_arrays("validation")
    for model in HONEST_MODELS:
        history = store.read_history(run_id, model)
        entry = ev.entry(model)
        assert entry.status == "ok"
        assert entry.best_epoch == int(history.loc[history["val_loss"].idxmin(), "epoch"])
        assert Path(entry.checkpoint).name.startswith(f"epoch-{entry.best_epoch:03d}-")
        # the loaded checkpoint reproduces that epoch's recorded val_loss (its saved predictions'
        # loss on the validation windows), which no other epoch's weights would
        net = load_checkpoint(Path(entry.checkpoint))
        pred = net.predict(x_val, verbose=0)
        target = model_targets(model, y_val, ds.target_feature)
        recomputed = float(np.mean((pred - target) ** 2))
        recorded = float(history.loc[history["epoch"] == entry.best_epoch, "val_loss"].iloc[0])
        assert recomputed == pytest.approx(recorded, rel=1e-3)
        other = history.loc[history["epoch"] != entry.best_epoch, "val_loss"]
        assert all(abs(recomputed - v) > 1e-3 * recorded for v in other)
    # champion is the lowest validation loss among models
    scores = {m: ev.entry(m).validation.mse_scaled for m in HONEST_MODELS}
    assert ev.champion == min(scores, key=scores.get)
    # every entry is scored on the same test windows
    n = {e.evaluation.n_windows for e in ev.entries}
    assert n == {ds.split_size("test")} and ev.eval_split == "test"
    # persistence skill is zero by definition; the baselines are there
    assert ev.entry("persistence").evaluation.skill == pytest.approx(0.0, abs=1e-12)
    assert {e.name for e in ev.entries} == {*HONEST_MODELS, "persistence", "lag", "linear"}
    # MASE: MAE over persistence's MAE on the training windows, in price units
    f = ds.target_feature
    x_train, y_train = ds.split_arrays("train")
    anchors = ds.split_anchors("train")
    train_actual = ds.scaler.target_to_price(y_train[:, :, f], f, anchors)
    train_last = ds.scaler.target_to_price(x_train[:, -1, f], f, anchors)
    scale = float(np.mean(np.abs(train_actual - train_last[:, None])))
    for e in ev.entries:
        assert e.evaluation.mase == pytest.approx(e.evaluation.mae / scale)
        assert e.validation.mase == pytest.approx(e.validation.mae / scale)
    # persistence predicts no move: no direction accuracy; it is DM's reference
    persistence = ev.entry("persistence")
    assert np.isnan(persistence.evaluation.direction_accuracy)
    assert persistence.significance["dm_stat"] is None and persistence.significance["dm_p"] is None
    assert persistence.significance["skill_lo"] == pytest.approx(0.0, abs=1e-12)
    for name in (*HONEST_MODELS, "lag", "linear"):
        e = ev.entry(name)
        sig = e.significance
        assert sig["skill_lo"] <= sig["skill_hi"] and 0.0 <= sig["dm_p"] <= 1.0
        # DM's mean loss difference is the MSE difference: the statistic has its sign
        assert np.sign(sig["dm_stat"]) == np.sign(e.evaluation.mse - e.evaluation.persistence_mse)
    ds.close()


@pytest.mark.slow
def test_seed_run_scores_test_on_validation_windows(real_runs):
    from tasks.evaluation import evaluate_run
    from tasks.report.leaderboard import leaderboard_rows

    ev = evaluate_run(real_runs["data_dir"], real_runs["seed"])
    assert ev.protocol == "seed" and ev.eval_split == "validation"
    e = ev.entry("cnn2_relu")
    assert e.evaluation.mse == pytest.approx(e.validation.mse)
    rows = leaderboard_rows(ev)
    assert rows[0]["val_loss"] <= rows[-1]["val_loss"]


# ------------------------------------------------------------------------ the flow, real Prefect


def _read_artifacts(flow_run_id: str):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    async def go():
        async with get_client() as client:
            return await client.read_artifacts(
                artifact_filter=ArtifactFilter(
                    flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])
                )
            )

    return asyncio.run(go())


@pytest.mark.slow
def test_report_flow_writes_html_leaderboard_artifacts_and_champion(real_runs, prefect_api):
    from flows.report import report
    from storage.champions import ChampionRegistry
    from storage.layout import DataLayout

    data_dir, run_id = real_runs["data_dir"], real_runs["honest"]
    sweep = DataLayout.at(data_dir).runs / run_id / "sweep.csv"
    sweep.write_text(
        "target,kind,strength,repeat,val_mse_scaled,val_mse_price\n"
        + "".join(
            f"kernel,l2,{s},{r},0.001,{1000 + 10 * r + s}\n" for s in (0, 1) for r in range(3)
        )
    )
    path = Path(report(run_id=run_id, data_dir=str(data_dir)))
    assert path == DataLayout.at(data_dir).reports / run_id / "report.html"
    text = path.read_text()

    board = json.loads((path.parent / "leaderboard.json").read_text())
    names = [r["model"] for r in board]
    assert sorted(names) == sorted([*HONEST_MODELS, "persistence", "lag", "linear"])
    for r in board:
        assert {"model", "best_epoch", "val_loss", "test_mse", "skill"} <= set(r)
        assert f"<td>{r['model']}</td>" in text  # a row per model and baseline in the HTML
    with open(path.parent / "leaderboard.csv", newline="") as fh:
        assert sorted(row["model"] for row in csv.DictReader(fh)) == sorted(names)
    champions = [r for r in board if r["champion"]]
    assert len(champions) == 1 and champions[0]["model"] in HONEST_MODELS

    # every embedded image decodes as a PNG
    uris = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
    assert len(uris) == 5 and 'alt="regularization"' in text  # 4 figures + the sweep
    import matplotlib.image as mpimg

    for b64 in uris:
        png = base64.b64decode(b64)
        assert png.startswith(PNG_SIGNATURE)
        assert mpimg.imread(io.BytesIO(png), format="png").shape[0] > 100
    assert 'src="http' not in text and "<link" not in text  # self-contained

    # metadata: dataset id, candle fingerprint, protocol, flow run id
    meta = json.loads((path.parent / "evaluation.json").read_text())
    for key in ("dataset_id", "candle_fingerprint", "protocol", "report_flow_run_id"):
        assert meta[key] and str(meta[key]) in text
    # the Prefect artifacts exist on the API
    artifacts = _read_artifacts(meta["report_flow_run_id"])
    kinds = {a.type for a in artifacts}
    assert {"table", "markdown"} <= kinds
    table = next(a for a in artifacts if a.type == "table")
    rows = json.loads(table.data) if isinstance(table.data, str) else table.data
    assert sorted(r["model"] for r in rows) == sorted(names)
    md = next(a for a in artifacts if a.type == "markdown").data
    assert champions[0]["model"] in md and "data:image/png;base64," in md

    # the champion registry records the winner's lineage, as champion or as a challenger the
    # gate kept out (the first of its market: judged against persistence), and the report says
    registry = ChampionRegistry(DataLayout.at(data_dir).reports)
    recorded = [r for r in registry.records() + registry.challengers() if r["run_id"] == run_id]
    assert len(recorded) == 1
    current = recorded[0]
    assert current["model"] == champions[0]["model"]
    assert current["epoch"] == champions[0]["best_epoch"]
    assert current["dataset_id"] == meta["dataset_id"]
    assert current["flow_run_id"] == meta["report_flow_run_id"]
    assert (current["symbol"], current["interval"]) == ("BTC_USDT", "MINUTE_5")
    assert Path(current["checkpoint"]).is_file()
    evidence = current["evidence"]
    assert evidence["rule"] == "beat-both" and evidence["incumbent_run_id"] is None
    assert evidence["challenger_mse"] == pytest.approx(champions[0]["test_mse"])
    assert current["promoted"] is (evidence["challenger_mse"] < evidence["persistence_mse"])
    gate = meta["champion_gate"]
    assert gate["promoted"] is current["promoted"] and current["reason"] in gate["sentence"]
    assert "Champion gate" in text and "Champion gate" in md


@pytest.mark.slow
def test_compare_and_cli(real_runs, prefect_api, capsys):
    from cryptoflow.cli import main

    data_dir = str(real_runs["data_dir"])
    assert (
        main(
            ["report", "--compare", real_runs["seed"], real_runs["honest"], "--data-dir", data_dir]
        )
        == 0
    )
    out = Path(capsys.readouterr().out.strip().splitlines()[-1])
    text = out.read_text()
    assert "Tutorial" in text and "114,308" in text  # the tutorial's published CNN-2 ReLU
    rows = json.loads(out.with_suffix(".json").read_text())
    cnn = next(r for r in rows if r["model"] == "cnn2_relu")
    assert cnn["seed_test_mse"] is not None and cnn["honest_test_mse"] is not None

    # default: the latest run
    assert main(["report", "--data-dir", data_dir]) == 0
    printed = capsys.readouterr().out.strip().splitlines()[-1]
    assert printed.endswith("report.html") and Path(printed).is_file()


# ------------------------------------------------------------------------ bad input


def test_unknown_and_empty_runs(tmp_path):
    from storage.runs import RunStore
    from tasks.evaluation import evaluate_run

    data_dir = tmp_path / "data"
    with pytest.raises(ValueError, match="no training runs"):
        evaluate_run(data_dir, None)
    with pytest.raises(ValueError, match="unknown run 'nope'"):
        evaluate_run(data_dir, "nope")
    with pytest.raises(ValueError, match="invalid run id"):
        evaluate_run(data_dir, "../etc")
    store = RunStore(data_dir / "runs")
    store.write_run("empty", {"models": []})
    with pytest.raises(ValueError, match="has no models"):
        evaluate_run(data_dir, "empty")


def test_cli_bad_run_is_one_line_exit_2(tmp_path, capsys):
    from cryptoflow.cli import main

    assert main(["report", "--run", "nope", "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "unknown run 'nope'" in err and "Traceback" not in err
    (tmp_path / "runs" / "r1").mkdir(parents=True)
    (tmp_path / "runs" / "r1" / "run.json").write_text('{"models": []}')
    assert main(["report", "--compare", "r1", "r2", "--data-dir", str(tmp_path)]) == 2
    assert "unknown run 'r2'" in capsys.readouterr().err


@pytest.mark.slow
def test_missing_checkpoint_and_diverged_model(real_runs, tmp_path):
    import shutil

    from storage.runs import RunStore
    from tasks.evaluation import evaluate_run

    src = real_runs["data_dir"]
    data_dir = tmp_path / "data"
    shutil.copytree(src / "runs", data_dir / "runs")
    shutil.copytree(src / "windows", data_dir / "windows")
    store = RunStore(data_dir / "runs")
    run_id = real_runs["honest"]
    info = store.read_run(run_id)
    info["dataset_path"] = str(data_dir / "windows" / Path(info["dataset_path"]).name)
    store.write_run(run_id, info)

    # diverged: a NaN in gru's history -> listed, never chosen, not scored
    md = store.model(run_id, "gru_tanh_leaky")
    h = md.read_history()
    h.loc[h.index[-1], "val_loss"] = float("nan")
    md._write_history(h)
    ev = evaluate_run(data_dir, run_id)
    gru = ev.entry("gru_tanh_leaky")
    assert gru.status == "diverged" and gru.validation is None and gru.best_epoch is None
    assert ev.champion == "cnn2_relu"

    # missing best checkpoint: the other epoch's is used, and the skipped one is named
    cnn = store.model(run_id, "cnn2_relu")
    best = ev.entry("cnn2_relu").best_epoch
    path = cnn.checkpoints()[best]
    path.unlink()
    ev = evaluate_run(data_dir, run_id)
    cnn_entry = ev.entry("cnn2_relu")
    assert cnn_entry.best_epoch == 3 - best and cnn_entry.status == "ok"  # 2 epochs: the other
    assert len(cnn_entry.skipped) == 1 and f"epoch-{best:03d}" in cnn_entry.skipped[0]
