"""The parallel zoo flow on a real Prefect API: one task run per model (named after it), each in
its own process; parallel equals serial; progress artifacts; clean errors for bad requests."""

from __future__ import annotations

import json
import os
from pathlib import Path

import h5py
import pandas as pd
import pytest

from cryptoflow.cli import main as cli
from storage.runs import RunStore
from storage.windows.store import WindowStore
from tasks.training.slots import Slot, plan_slots
from tests.support.windows import write_real_windows

MODELS = ["cnn2_relu", "gru_tanh_relu"]


@pytest.fixture(scope="module")
def windows(tmp_path_factory) -> Path:
    return write_real_windows(tmp_path_factory.mktemp("flow") / "w64.h5", 64, 4, stride=16)


def test_plan_slots():
    assert plan_slots("cpu", 2, 8, []) == [Slot("cpu-0", "", 4, False), Slot("cpu-1", "", 4, False)]
    assert plan_slots("auto", None, 2, []) == [Slot("cpu-0", "", 2, False)]
    assert [s.devices for s in plan_slots("auto", None, 16, ["0", "1"])] == ["0", "1"]
    gpu = plan_slots("gpu:1", 4, 16, ["0", "1"])
    assert gpu == [Slot("gpu-1", "1", 16, True)]
    for bad in ("tpu", "gpu:x"):
        with pytest.raises(ValueError, match="bad --devices"):
            plan_slots(bad, 1, 2, [])
    with pytest.raises(ValueError, match="not found"):
        plan_slots("gpu:3", 1, 2, ["0"])
    with pytest.raises(ValueError, match="parallel"):
        plan_slots("cpu", 0, 2, [])
    with pytest.raises(ValueError, match="no GPU found"):
        plan_slots("gpu:0", None, 2, [])


def test_parallel_beyond_the_cores_is_clamped_with_a_warning():
    """Issue 15 minor: ``parallel`` 999 on 2 cores gave 999 slots, recorded as 999 devices."""
    from tasks.training.slots import parallel_note

    slots = plan_slots("cpu", 999, 2, [])
    assert slots == [Slot("cpu-0", "", 1, False), Slot("cpu-1", "", 1, False)]
    assert "parallel 999 exceeds the 2 CPU core(s)" in parallel_note(999, 2, slots)
    assert parallel_note(2, 2, slots) is None
    # never more slots than jobs: one model uses one slot, with every core's threads
    assert plan_slots("cpu", 4, 8, [], jobs=1) == [Slot("cpu-0", "", 8, False)]
    assert [s.name for s in plan_slots("auto", None, 16, ["0", "1"], jobs=1)] == ["gpu-0"]


@pytest.mark.slow
def test_gpu_slot_holds_the_prefect_concurrency_limit(prefect_api, tmp_path, windows):
    """A GPU slot trains under the global limit cryptoflow-gpu-<id> (limit 1), then frees it.

    No GPU here: the worker sees CUDA_VISIBLE_DEVICES=5 and falls back to the CPU, which is
    enough to exercise the slot and limit bookkeeping."""
    import queue

    from prefect import flow
    from prefect.client.orchestration import get_client

    from tasks.training.task import GPU_LIMIT_PREFIX, ensure_gpu_limits, train_model_task

    slot = Slot("gpu-5", "5", 1, True)

    @flow
    def one_gpu_model() -> dict:
        ensure_gpu_limits([slot])
        free: queue.Queue = queue.Queue()
        free.put(slot)
        return train_model_task(
            "cnn2_relu", str(windows), str(tmp_path / "r" / "cnn2_relu"),
            {"epochs": 1, "batch_size": 8, "seed": 0, "patience": None, "checkpoints": "every"},
            free,
        )

    result = one_gpu_model()
    assert result["slot"] == "gpu-5" and result["epochs_completed"] == 1
    with get_client(sync_client=True) as client:
        limit = client.read_global_concurrency_limit_by_name(GPU_LIMIT_PREFIX + "5")
    assert limit.limit == 1 and limit.active_slots == 0


def test_window_store_locates_by_path_id_or_newest(tmp_path, windows):
    root = tmp_path / "windows"
    root.mkdir()
    for name, symbol, mtime in [("aa11", "BTC_USDT", 100), ("bb22", "BTC_USDT", 200),
                                ("cc33", "ETH_USDT", 300)]:
        with h5py.File(root / f"{name}.h5", "w") as f:
            f.attrs["symbol"], f.attrs["interval"] = symbol, "MINUTE_5"
        os.utime(root / f"{name}.h5", (mtime, mtime))
    store = WindowStore(root)
    assert store.locate(None, "btc_usdt", "minute_5").name == "bb22.h5"
    assert store.locate("aa11", None, None).name == "aa11.h5"
    assert store.locate(str(windows), None, None) == windows.resolve()
    with pytest.raises(ValueError, match="no window file with id"):
        store.locate("dd44", None, None)
    with pytest.raises(ValueError, match="invalid dataset id"):
        store.locate("..", None, None)
    with pytest.raises(ValueError, match="no window file for BTC_USDT HOUR_1"):
        store.locate(None, "BTC_USDT", "HOUR_1")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--models", "cnn2_relu,bogus"], "models.1: Input should be 'cnn2_relu'"),
        (["--epochs", "0"], "epochs: Input should be greater than or equal to 1"),
        (["--dataset", "0123abcd"], "no window file with id"),
        (["--devices", "tpu:0"], "devices: String should match pattern"),
        (["--backend", "mxnet"], "backend: Input should be 'tensorflow', 'jax' or 'torch'"),
        (["--models-per-gpu", "0"], "models_per_gpu: Input should be greater than or equal to 1"),
    ],
)
def test_cli_bad_input_exits_2_and_writes_nothing(args, message, data_dir, windows, capsys):
    base = ["train", "--data-dir", str(data_dir), "--dataset", str(windows), "--epochs", "1"]
    assert cli([*base, *args]) == 2
    assert message in capsys.readouterr().err
    assert not (data_dir / "runs").exists()


@pytest.mark.slow
def test_parallel_zoo_equals_serial_with_named_task_runs(prefect_api, data_dir, windows):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        FlowRunFilter,
        FlowRunFilterId,
    )

    from flows.train import train

    common = {"models": MODELS, "epochs": 2, "dataset": str(windows), "data_dir": str(data_dir),
              "devices": "cpu", "seed": 4}
    par = train(parallel=2, run_id="parallel", **common)
    ser = train(parallel=1, run_id="serial", **common)
    store = RunStore(data_dir / "runs")
    for model in MODELS:
        a = store.read_history(par, model)[["epoch", "loss", "val_loss"]]
        b = store.read_history(ser, model)[["epoch", "loss", "val_loss"]]
        assert a["epoch"].tolist() == [1, 2]
        pd.testing.assert_frame_equal(a, b)
        assert sorted(store.checkpoints(par, model)) == [1, 2]
        assert store.read_result(par, model)["epochs_completed"] == 2
    info = store.read_run(par)
    assert info["models"] == sorted(MODELS) and info["dataset_path"] == str(windows.resolve())
    assert info["devices"] == ["cpu-0", "cpu-1"]
    assert info["protocol"] == "honest" and info["symbol"] == "BTC_USDT" and info["past"] == 64
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[info["flow_run_id"]]))
        )
        assert sorted(r.name for r in runs) == sorted(MODELS)
        assert all(r.state.is_completed() for r in runs)
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[info["flow_run_id"]])
            )
        )
    progress = [a for a in artifacts if a.type == "progress"]
    assert len(progress) == len(MODELS) and all(float(a.data) == 100.0 for a in progress)


@pytest.mark.slow
def test_cli_trains_and_prints_the_run(prefect_api, data_dir, windows, capsys):
    rc = cli(["train", "--dataset", str(windows), "--data-dir", str(data_dir), "--models",
              "cnn4_leaky", "--epochs", "1", "--run-id", "cli-run", "--checkpoints", "best"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["run_id"] == "cli-run"
    store = RunStore(data_dir / "runs")
    assert store.read_history("cli-run", "cnn4_leaky")["epoch"].tolist() == [1]
    assert store.latest_run() == "cli-run"


def test_terminal_progress_bars_and_no_op():
    """Bars per name from many threads at once (train: update; ingest: add + advance); a
    disabled one does nothing, even for names it never saw."""
    import threading

    from tasks.progress import TerminalProgress

    with TerminalProgress(False) as off:
        off.update("cnn2_relu", 1, 2, "val_loss 1")
        off.advance("never-added")
    assert not off.enabled and not TerminalProgress.on_terminal(False).enabled
    with TerminalProgress(True, unit="pages", eta=True, stderr=True) as bars:
        bars.add("BTC_USDT", total=40)
        workers = [threading.Thread(target=lambda: [bars.advance("BTC_USDT", status="x")
                                                    for _ in range(10)]) for _ in range(4)]
        workers += [threading.Thread(target=bars.update, args=(f"m{i}", 1, 3)) for i in range(4)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
    tasks = {t.description: t for t in bars._progress.tasks}
    assert tasks["BTC_USDT"].completed == 40 and tasks["BTC_USDT"].fields["status"] == "x"
    assert {f"m{i}" for i in range(4)} <= set(tasks) and tasks["m0"].completed == 1
