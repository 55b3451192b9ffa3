"""The CLI cannot drift from the flows: every option of a flow's subcommand is generated from the
flow's signature and ``Args:`` docstring, with the same name, default and help."""

from __future__ import annotations

import argparse
import inspect
import json

import pytest
from prefect.utilities.callables import parameter_docstrings

from cryptoflow.cli import SUBCOMMANDS, build_parser
from cryptoflow.cli import main as cli_main
from cryptoflow.options import help_text

#: subcommand -> (flow module, flow name, parameters the CLI sets itself)
FLOW_COMMANDS = {
    "ingest": ("flows.ingest", "ingest", ()),
    "prepare": ("flows.prepare", "prepare", ()),
    "train": ("flows.train", "train", ("progress_bar",)),
    "sweep": ("flows.sweep", "sweep", ("progress_bar",)),
    "report": ("flows.report", "report", ()),
    "run": ("flows.pipeline", "pipeline", ()),
    "forecast": ("flows.forecast", "forecast", ()),
}


def _flow(command: str):
    import importlib

    module, name, _ = FLOW_COMMANDS[command]
    return getattr(importlib.import_module(module), name)


def _subparser(command: str) -> argparse.ArgumentParser:
    parser = build_parser(command)
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[command]


@pytest.mark.parametrize("command", sorted(FLOW_COMMANDS))
def test_every_option_mirrors_its_flow_parameter(command):
    flow = _flow(command)
    fn = flow.fn
    docs = parameter_docstrings(inspect.getdoc(fn))
    params = inspect.signature(fn).parameters
    skipped = set(FLOW_COMMANDS[command][2])
    options = {a.dest: a for a in _subparser(command)._actions if a.dest in params}
    # every parameter has exactly one option (less those the command sets itself), and back
    assert set(options) == set(params) - skipped
    for name, action in options.items():
        assert f"--{name.replace('_', '-')}" in action.option_strings, name
        default = params[name].default
        default = None if default is inspect.Parameter.empty else default
        assert action.help == help_text(" ".join(docs[name].split()), default), name
        # the CLI keeps no default of its own: a value left out is the flow's default
        assert action.default is argparse.SUPPRESS, name


@pytest.mark.parametrize("command", sorted(FLOW_COMMANDS))
def test_no_options_means_the_flow_defaults(command):
    from cryptoflow.options import given, validated

    flow = _flow(command)
    args = _subparser(command).parse_args([])
    skipped = FLOW_COMMANDS[command][2]
    defaults = {
        n: p.default for n, p in inspect.signature(flow.fn).parameters.items()
        if p.default is not inspect.Parameter.empty and n not in skipped
    }
    assert given(args) == {}
    resolved = validated(flow, given(args))
    for name, default in defaults.items():
        assert resolved[name] == default, name


def test_values_are_converted_and_checked_by_the_flow_signature():
    from cryptoflow.options import given, validated
    from flows.train import train
    from tasks.zoo import MODEL_NAMES

    args = _subparser("train").parse_args(
        ["--models", "cnn2_relu,gru_tanh_relu", "--models", "lstm_tanh_relu", "--epochs", "3",
         "--patience", "none", "--devices", "CPU", "--checkpoints", "best"]
    )
    params = validated(train, given(args))
    assert [m.value for m in params["models"]] == ["cnn2_relu", "gru_tanh_relu", "lstm_tanh_relu"]
    assert params["epochs"] == 3 and params["patience"] is None and params["devices"] == "cpu"
    all_models = validated(train, {"models": ["all"]})["models"]
    assert [m.value for m in all_models] == list(MODEL_NAMES)


@pytest.mark.parametrize(
    ("argv", "name"),
    [
        (["train", "--epochs", "0"], "epochs"),
        (["train", "--models", "cnn9"], "models"),
        (["train", "--devices", "tpu"], "devices"),
        (["train", "--checkpoints", "some"], "checkpoints"),
        (["train", "--run-id", "../x"], "run_id"),
        (["prepare", "--protocol", "leaky"], "protocol"),
        (["prepare", "--past", "-3"], "past"),
        (["prepare", "--splits", "0.5,1.5"], "splits"),
        (["prepare", "--symbol", "ß_USDT"], "symbol"),
        (["ingest", "--interval", "MINUTE_7"], "interval"),
        (["ingest", "--start", "yesterday-ish"], "start"),
        (["ingest", "--base-url", "ftp://x"], "base_url"),
        (["sweep", "--kinds", "l3"], "kinds"),
        (["run", "--batch-size", "0"], "batch_size"),
    ],
)
def test_bad_values_exit_2_naming_the_parameter(tmp_path, capsys, argv, name):
    code = cli_main([*argv, "--data-dir", str(tmp_path / "data")])
    err = capsys.readouterr().err
    assert code == 2, err
    assert name in err and "Traceback" not in err
    assert not (tmp_path / "data").exists(), "a refused request wrote something"


def test_aliases_kept_for_old_option_names():
    args = _subparser("ingest").parse_args(
        ["--symbol", "BTC_USDT", "--symbol", "ETH_USDT", "--rate-limit", "0"]
    )
    assert args.symbols == ["BTC_USDT", "ETH_USDT"] and args.max_requests_per_second == "0"
    assert _subparser("report").parse_args(["--run", "r1"]).run_id == "r1"


def test_help_lists_every_subcommand_without_importing_flows(capsys):
    import subprocess
    import sys

    code = (
        "import sys; from cryptoflow.cli import build_parser; build_parser('settings');"
        "print(sorted(m for m in sys.modules if m.startswith(('flows', 'tensorflow'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"
    with pytest.raises(SystemExit):
        cli_main(["--help"])
    printed = capsys.readouterr().out
    assert all(name in printed for name in SUBCOMMANDS)


def test_settings_command_prints_values_and_sources(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("CRYPTOFLOW_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CRYPTOFLOW_TIMEOUT", "7.5")
    monkeypatch.delenv("CRYPTOFLOW_DASK_ADDRESS", raising=False)
    assert cli_main(["settings", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["data_dir"]["value"] == str(tmp_path)
    assert rows["data_dir"]["source"] == "env CRYPTOFLOW_DATA_DIR"
    assert rows["poloniex.timeout"]["value"] == 7.5
    assert rows["poloniex.timeout"]["source"] == "env CRYPTOFLOW_TIMEOUT"
    assert rows["dask_address"]["source"] == "default" and rows["dask_address"]["value"] is None
    assert all(r["description"] for r in rows.values())


def test_bad_setting_is_refused_naming_the_variable(monkeypatch, capsys):
    monkeypatch.setenv("CRYPTOFLOW_WORKER_THREADS", "0")
    assert cli_main(["settings"]) == 2
    assert "CRYPTOFLOW_WORKER_THREADS" in capsys.readouterr().err
