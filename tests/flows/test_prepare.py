"""The prepare flow and ``cryptoflow prepare`` on a real candle store and a real Prefect API."""

from __future__ import annotations

from pathlib import Path

import h5py
import pytest
from prefect.exceptions import ParameterTypeError

from cryptoflow.cli import main as cli_main
from flows.prepare import prepare
from storage.candles import CandleStore
from storage.layout import DataLayout
from tests.support.realdata import poloniex_5m


@pytest.fixture
def store_dir(data_dir: Path) -> Path:
    candles = poloniex_5m()
    CandleStore(DataLayout.at(data_dir).candles).append("BTC_USDT", "MINUTE_5", candles.iloc[:6000])
    return data_dir


def _cut_windows_states() -> list[str]:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs()
    return [r.state.name for r in runs if r.name.startswith("cut-windows") and r.state]


def test_prepare_writes_once_and_reuses(prefect_api, store_dir):
    path = Path(prepare("BTC_USDT", "MINUTE_5", past=32, future=8, data_dir=str(store_dir)))
    assert path.parent == DataLayout.at(store_dir).windows and path.suffix == ".h5"
    with h5py.File(path, "r") as f:
        assert f.attrs["protocol"] == "honest" and f["inputs"].shape[1:] == (32, 1)
        n_windows = f["inputs"].shape[0]
        fingerprint = f.attrs["candle_fingerprint"]
    assert fingerprint == CandleStore(DataLayout.at(store_dir).candles).fingerprint(
        "BTC_USDT", "MINUTE_5"
    )
    before = path.stat()
    cached_before = _cut_windows_states().count("Cached")
    again = Path(prepare("BTC_USDT", "MINUTE_5", past=32, future=8, data_dir=str(store_dir)))
    after = again.stat()
    assert again == path
    assert (after.st_ino, after.st_mtime_ns, after.st_size) == (
        before.st_ino,
        before.st_mtime_ns,
        before.st_size,
    )
    assert _cut_windows_states().count("Cached") == cached_before + 1  # Prefect's cache hit
    # Deleted behind Prefect's back: the cache is refreshed and the file written again.
    path.unlink()
    third = Path(prepare("BTC_USDT", "MINUTE_5", past=32, future=8, data_dir=str(store_dir)))
    assert third == path and third.is_file()
    with h5py.File(third, "r") as f:
        assert f["inputs"].shape[0] == n_windows


def test_new_candles_give_a_new_dataset(prefect_api, store_dir):
    first = Path(prepare("BTC_USDT", "MINUTE_5", past=32, future=8, data_dir=str(store_dir)))
    CandleStore(DataLayout.at(store_dir).candles).append(
        "BTC_USDT", "MINUTE_5", poloniex_5m().iloc[6000:]
    )
    second = Path(prepare("BTC_USDT", "MINUTE_5", past=32, future=8, data_dir=str(store_dir)))
    assert second != first and first.is_file() and second.is_file()
    with h5py.File(first, "r") as a, h5py.File(second, "r") as b:
        assert b.attrs["n_rows"] > a.attrs["n_rows"]
        assert a.attrs["candle_fingerprint"] != b.attrs["candle_fingerprint"]


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"past": 0}, "past"),
        ({"future": -1}, "future"),
        ({"past": 6000, "future": 16}, "past\\+future"),
        ({"features": ["close", "moon_phase"]}, "features"),
        ({"splits": [0.8, 0.3, 0.1]}, "splits"),
        ({"splits": [0.985, 0.005, 0.01]}, "splits"),  # 30 validation candles < 40
    ],
)
def test_prepare_rejects_bad_input_and_writes_nothing(prefect_api, store_dir, kwargs, param):
    params = {"past": 32, "future": 8} | kwargs
    with pytest.raises((ValueError, ParameterTypeError), match=param):
        prepare("BTC_USDT", "MINUTE_5", data_dir=str(store_dir), **params)
    windows = DataLayout.at(store_dir).windows
    assert not windows.exists() or not any(windows.iterdir())


def test_cli_prints_path_and_counts(prefect_api, store_dir, capsys):
    argv = [
        "prepare",
        "--symbol",
        "btc_usdt",
        "--interval",
        "minute_5",
        "--protocol",
        "seed",
        "--past",
        "64",
        "--future",
        "8",
        "--stride",
        "1",
        "--data-dir",
        str(store_dir),
    ]
    assert cli_main(argv) == 0
    out = capsys.readouterr().out.strip().splitlines()
    path = Path(out[0])
    assert path.is_file()
    with h5py.File(path, "r") as f:
        n = f["inputs"].shape[0]
        assert f.attrs["protocol"] == "seed" and f["inputs"].dtype == "float64"
    assert n == 6000 - 72 + 1
    assert out[1] == f"train={int(0.8 * n)} validation={n - int(0.8 * n)} test=0 dropped_gaps=0"


def test_cli_bad_input_is_one_line(prefect_api, store_dir, capsys):
    assert (
        cli_main(
            [
                "prepare",
                "--symbol",
                "BTC_USDT",
                "--interval",
                "MINUTE_5",
                "--future",
                "0",
                "--data-dir",
                str(store_dir),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "future" in err[0]


def test_stride_leaving_no_validation_window_is_refused_before_writing(
    prefect_api, store_dir, capsys
):
    """Issue 15 item 8: a stride that leaves a split without a window is bad input (exit 2,
    one line naming stride and splits), not an exit 0 with a useless file."""
    argv = ["prepare", "--symbol", "BTC_USDT", "--interval", "MINUTE_5", "--past", "32",
            "--future", "8", "--stride", "3000", "--data-dir", str(store_dir)]
    assert cli_main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0]
    assert "stride 3000" in err[0] and "splits" in err[0] and "0 validation" in err[0]
    windows = DataLayout.at(store_dir).windows
    assert not windows.exists() or not any(windows.iterdir())
    with pytest.raises(ValueError, match="stride 3000"):
        prepare("BTC_USDT", "MINUTE_5", past=32, future=8, stride=3000, data_dir=str(store_dir))
    assert not windows.exists() or not any(windows.iterdir())
