"""`cryptoflow run` fails fast and clearly, before any work; training run ids follow the inputs."""

from __future__ import annotations

import subprocess

import pytest

from flows.pipeline import pipeline, training_run_id
from tests.support.servers import VENV_BIN, base_env, free_port


def _run(args, tmp_path):
    env = base_env(tmp_path / "home")
    return subprocess.run([VENV_BIN / "cryptoflow", "run", *args], env=env, capture_output=True,
                          text=True, timeout=300)


def test_unreachable_api_fails_fast_pointing_at_replay(tmp_path):
    data = tmp_path / "data"
    port = free_port()  # nothing listens there
    proc = _run(["--base-url", f"http://127.0.0.1:{port}", "--data-dir", str(data)], tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "--base-url" in proc.stderr and "cryptoflow replay" in proc.stderr
    assert "temporary local Prefect server" not in proc.stderr  # failed before starting one
    assert not data.exists()


@pytest.mark.parametrize(
    ("args", "name"),
    [(["--epochs", "0"], "epochs"), (["--future", "-1"], "future"),
     (["--symbol", "../x"], "symbol"), (["--models", "cnn9"], "cnn9"),
     (["--folds", "0"], "folds"), (["--folds", "2", "--protocol", "seed"], "folds"),
     (["--scaler", "window", "--protocol", "seed"], "scaler"),
     (["--fold-mode", "sideways"], "fold"),
     (["--symbol", ",".join(f"C{i}_USDT" for i in range(17)), "--interval", "MINUTE_5,HOUR_1"],
      "34 markets"),
     (["--interval", "MINUTE_5,MONTH_1"], "MONTH_1")],
)
def test_invalid_parameters_are_refused_naming_them(tmp_path, args, name):
    data = tmp_path / "data"
    proc = _run([*args, "--data-dir", str(data), "--base-url", "http://127.0.0.1:9"], tmp_path)
    assert proc.returncode == 2, proc.stderr
    last = proc.stderr.strip().splitlines()[-3:]
    assert any(name in line for line in last), proc.stderr
    assert not data.exists()


def test_training_run_id_is_derived_from_the_inputs():
    base = ("/d/windows/abc123.h5", ["gru_tanh_leaky", "cnn2_relu"], 20, 64, 0, 3)
    rid = training_run_id(*base)
    assert rid.startswith("abc123-")
    assert training_run_id("/d/windows/abc123.h5", ["cnn2_relu", "gru_tanh_leaky"], 20, 64, 0, 3
                           ) == rid  # model order does not matter
    changed = [
        ("/d/windows/zzz999.h5", *base[1:]),
        (base[0], ["cnn2_relu"], *base[2:]),
        (*base[:2], 21, *base[3:]),
        (*base[:3], 8, *base[4:]),
        (*base[:4], 1, base[5]),
        (*base[:5], None),
    ]
    assert len({training_run_id(*c) for c in changed} | {rid}) == len(changed) + 1


def test_pipeline_parameters_have_descriptions_and_defaults():
    from prefect.utilities.callables import parameter_schema

    schema = parameter_schema(pipeline.fn).model_dump()
    props = schema["properties"]
    expected = {"symbols", "intervals", "start", "base_url", "data_dir", "protocol", "past",
                "future", "models", "epochs", "batch_size", "parallel"}
    assert expected <= set(props)
    assert schema["required"] == []  # Quick run works with defaults alone
    assert all(p.get("description") for p in props.values())
    assert props["epochs"]["minimum"] == 1
