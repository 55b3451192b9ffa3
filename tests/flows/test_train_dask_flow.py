"""The train flow's own `task_runner` switch: Dask gives the local runner's histories; bad
runner options are refused before anything is written."""

from __future__ import annotations

import subprocess

import pandas as pd
import pytest

from tests.support.servers import VENV_BIN, base_env


@pytest.mark.slow
def test_train_flow_on_dask_equals_process_runner(prefect_api, tmp_path):
    from flows.train import train
    from storage.runs import RunStore
    from tests.support.windows import write_real_windows

    path = write_real_windows(tmp_path / "w.h5", past=64, future=4, stride=4, rows=3000)
    histories = {}
    for runner in ("process", "dask"):
        data = tmp_path / runner
        run_id = train(models=["cnn2_relu"], epochs=2, batch_size=64, parallel=1, devices="cpu",
                       dataset=str(path), data_dir=str(data), run_id="r1", seed=3,
                       task_runner=runner)
        histories[runner] = RunStore(data / "runs").read_history(run_id, "cnn2_relu")
    assert list(histories["dask"]["epoch"]) == [1, 2]
    pd.testing.assert_frame_equal(
        histories["dask"][["epoch", "loss", "val_loss"]],
        histories["process"][["epoch", "loss", "val_loss"]],
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--dask-address", "tcp://127.0.0.1:8786"], "--dask-address needs --task-runner dask"),
     (["--task-runner", "dask", "--dask-address", "127.0.0.1:8786"], "127.0.0.1:8786")],
)
def test_bad_runner_options_fail_before_any_write(tmp_path, args, message):
    data = tmp_path / "data"
    proc = subprocess.run(
        [VENV_BIN / "cryptoflow", "train", "--dataset", "nope", "--data-dir", str(data), *args],
        env=base_env(tmp_path / "home"), capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
    assert not data.exists()
