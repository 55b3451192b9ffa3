"""Issue 15, training side, on a real Prefect API with real Keras training: a refused request
writes nothing, one lock per run folder, a failed start never becomes the latest run, a corrupt
checkpoint falls back to the best one that loads, ``parallel`` beyond the cores is clamped."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from cryptoflow.cli import main as cli
from storage.runs import RunStore
from tasks.training.slots import available_cores
from tests.support.windows import write_real_windows

MODEL = "cnn2_relu"
BASE = "base-run"


def _files(run_dir: Path) -> dict[str, bytes]:
    """Every file under a run folder (the lock file aside) and its bytes."""
    return {str(p.relative_to(run_dir)): p.read_bytes() for p in sorted(run_dir.rglob("*"))
            if p.is_file() and p.name != ".lock"}


@pytest.fixture(scope="module")
def trained(tmp_path_factory, prefect_api):
    """One real run: cnn2_relu, 3 epochs, a checkpoint per epoch, asked for 64 at once."""
    from flows.train import train

    root = tmp_path_factory.mktemp("requests")
    data_dir = root / "data"
    windows = write_real_windows(root / "w64.h5", 64, 4, stride=16)
    other = write_real_windows(root / "w64s8.h5", 64, 4, stride=8)
    run_id = train(models=[MODEL], epochs=3, batch_size=32, parallel=64, devices="cpu",
                   dataset=str(windows), data_dir=str(data_dir), run_id=BASE, seed=0,
                   patience=None, checkpoints="every")
    info = RunStore(data_dir / "runs").read_run(run_id)
    return {"data_dir": data_dir, "windows": windows, "other": other, "run_id": run_id,
            "info": info}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("change", "named"),
    [({"batch_size": 8}, "batch_size"), ({"seed": 5}, "seed"), ("other", "dataset_id"),
     ({"checkpoints": "best"}, "checkpoints")],
)
def test_refused_request_leaves_the_run_byte_identical(trained, change, named):
    """Same run id, other windows or settings: refused naming what differs, nothing written
    (run.json keeps the first request's windows, seed and batch size)."""
    from flows.train import train

    run_dir = RunStore(trained["data_dir"] / "runs").run_dir(BASE)
    before = _files(run_dir)
    params = {"models": [MODEL], "epochs": 3, "batch_size": 32, "devices": "cpu",
              "dataset": str(trained["windows"]), "data_dir": str(trained["data_dir"]),
              "run_id": BASE, "seed": 0, "checkpoints": "every"}
    params |= {"dataset": str(trained["other"])} if change == "other" else change
    with pytest.raises(Exception) as refused:  # noqa: PT011 - the kind is checked below
        train(**params)
    assert _files(run_dir) == before
    assert isinstance(refused.value, ValueError)
    assert re.search(f"run '{BASE}' already holds a different training.*{named}",
                     str(refused.value))


@pytest.mark.slow
def test_a_second_train_on_a_busy_run_is_refused_naming_it(trained, capsys):
    """One lock per run folder: while a train holds it, another on the same run id is refused
    at once (exit 2, one line naming the run) and writes nothing."""
    from storage.runs import RunBusyError

    store = RunStore(trained["data_dir"] / "runs")
    run_dir = store.run_dir(BASE)
    before = _files(run_dir)
    argv = ["train", "--models", MODEL, "--epochs", "4", "--batch-size", "32", "--devices",
            "cpu", "--dataset", str(trained["windows"]), "--data-dir", str(trained["data_dir"]),
            "--run-id", BASE, "--checkpoints", "every", "--patience", "none"]
    with store.lock(BASE):
        assert cli(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"run '{BASE}' is being trained" in err[0]
        with pytest.raises(RunBusyError), store.lock(BASE):
            pass
    assert _files(run_dir) == before
    with store.lock(BASE):  # released by the holder: free again
        pass


@pytest.mark.slow
def test_a_failed_start_is_never_the_latest_run(trained, tmp_path):
    """A train whose model cannot even be built leaves run.json but no epoch: a plain
    ``report`` still picks the last run that trained."""
    from flows.train import train
    from tasks.report.inputs import report_inputs_task

    short = write_real_windows(tmp_path / "w8.h5", 8, 8, stride=16)  # CNN-4 leaves 1 step < 8
    with pytest.raises(RuntimeError, match="training failed for cnn4_relu"):
        train(models=["cnn4_relu"], epochs=1, devices="cpu", dataset=str(short),
              data_dir=str(trained["data_dir"]), run_id="failed-start")
    store = RunStore(trained["data_dir"] / "runs")
    assert store.read_run("failed-start") is not None  # it did start
    assert store.runs()[-1] == "failed-start"           # and is the newest one created
    assert store.latest_run() == BASE
    assert report_inputs_task.fn(str(trained["data_dir"]), None)[0] == BASE


@pytest.mark.slow
def test_recorded_devices_are_the_cores_not_the_request(trained):
    """``parallel=64`` on this machine's cores: clamped to the cores (and to the one model),
    and run.json records only the slots that exist."""
    assert trained["info"]["devices"] == ["cpu-0"]
    assert 1 <= available_cores() < 64


@pytest.mark.slow
def test_truncated_best_checkpoint_falls_back_to_the_best_that_loads(trained, tmp_path):
    """The best epoch's .keras cut in half: selection uses the next best epoch that loads and
    says which file it skipped; the report shows it."""
    from tasks.evaluation import evaluate_run
    from tasks.report.render import render_report

    data_dir = tmp_path / "data"
    shutil.copytree(trained["data_dir"] / "runs", data_dir / "runs")
    store = RunStore(data_dir / "runs")
    md = store.model(BASE, MODEL)
    history = md.read_history()
    ranked = history.sort_values(["val_loss", "epoch"])["epoch"].tolist()
    best, second = ranked[0], ranked[1]
    bad = md.checkpoints()[best]
    bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])

    ev = evaluate_run(data_dir, BASE)
    entry = ev.entry(MODEL)
    assert entry.status == "ok" and entry.best_epoch == second
    assert entry.checkpoint == str(md.checkpoints()[second])
    assert entry.history_val_loss == pytest.approx(
        float(history.loc[history["epoch"] == second, "val_loss"].iloc[0]))
    assert len(entry.skipped) == 1 and str(bad) in entry.skipped[0]
    assert ev.champion == MODEL and entry.evaluation is not None
    html = render_report(ev, None, None)["html"]
    assert bad.name in html and "skipped" in html

    # every checkpoint unreadable: listed, not scored, never champion; the report still renders
    for path in md.checkpoints().values():
        path.write_bytes(b"not a zip")
    ev = evaluate_run(data_dir, BASE)
    entry = ev.entry(MODEL)
    assert entry.status == "no_checkpoint" and entry.validation is None
    assert ev.champion is None and len(entry.skipped) == len(history)
