"""The prepare flow and ``cryptoflow prepare`` on a real candle store and a real Prefect API."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import pytest
from prefect.exceptions import ParameterTypeError

from cryptoflow.cli import main as cli_main
from flows.prepare import prepare
from storage.candles import CandleStore
from storage.layout import DataLayout
from tests.support.paths import REPO_ROOT
from tests.support.realdata import poloniex_5m

# A real window writer that stops after filling its temporary file, until told to finish.
WINDOW_WRITER = """
import sys
import storage.windows.writer as writer
from storage.candles import CandleStore
from storage.layout import DataLayout
from tasks.windows.dataset import write_windows
from tasks.windows.spec import WindowSpec

fill = writer._write_windows

def fill_then_wait(*args, **kwargs):
    fill(*args, **kwargs)
    print("filled", flush=True)
    sys.stdin.readline()

writer._write_windows = fill_then_wait
layout = DataLayout.at(sys.argv[1])
candles = CandleStore(layout.candles).load("BTC_USDT", "MINUTE_5")
spec = WindowSpec(past=16, future=int(sys.argv[2]))
print(write_windows(candles, "BTC_USDT", "MINUTE_5", spec, layout.windows)["path"], flush=True)
"""


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


def _start_window_writer(data_dir: Path, future: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", WINDOW_WRITER, str(data_dir), str(future)], env=env, cwd=REPO_ROOT,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "filled", f"writer ended: {proc.wait(timeout=60)}"
    return proc


def test_prepare_removes_temporaries_of_crashed_writers_only(prefect_api, store_dir):
    """A window writer killed mid-file leaves `.<id>.h5.*.h5.tmp`: the next prepare removes it;
    the temporary of a writer still at work stays, and that writer completes its file."""
    windows = DataLayout.at(store_dir).windows
    crashed = _start_window_writer(store_dir, future=4)
    working = _start_window_writer(store_dir, future=5)
    try:
        os.kill(crashed.pid, signal.SIGKILL)
        crashed.wait(timeout=60)
        temps = sorted(windows.glob(".*.h5.tmp"))
        assert len(temps) == 2
        ten_minutes_ago = time.time() - 600  # both idle for a while: age alone decides nothing
        for path in temps:
            os.utime(path, (ten_minutes_ago, ten_minutes_ago))
        path = Path(prepare("BTC_USDT", "MINUTE_5", past=32, future=8, data_dir=str(store_dir)))
        left = sorted(windows.glob(".*.h5.tmp"))
        assert len(left) == 1, left  # the crashed writer's temporary is gone ...
        assert working.stdin is not None  # ... the working writer's is not, and it finishes
        working.stdin.write("\n")
        working.stdin.close()
        assert working.stdout is not None
        written = Path(working.stdout.readline().strip())
        assert working.wait(timeout=120) == 0
    finally:
        for proc in (crashed, working):
            proc.kill()
            proc.wait(timeout=60)
    assert not list(windows.glob(".*.tmp"))
    assert sorted(p.name for p in windows.iterdir()) == sorted([path.name, written.name])
    with h5py.File(written, "r") as f:
        assert f.attrs["future"] == 5 and f["outputs"].shape[1:] == (5, 1)


def _contents(path: Path) -> dict[str, bytes]:
    """Every dataset's bytes and every attribute of a window file."""
    out: dict[str, bytes] = {}
    with h5py.File(path, "r") as f:
        for name, ds in f.items():
            out[name] = ds[...].tobytes()
        for key, value in f.attrs.items():
            out[f"@{key}"] = repr(value).encode()
    return out


def _damage(path: Path, how: str) -> bytes:
    data = path.read_bytes()
    if how == "truncated":
        data = data[: len(data) // 2]
    elif how == "garbage":
        data = os.urandom(len(data))
    else:  # an empty file, e.g. a disk that filled up
        data = b""
    path.write_bytes(data)
    return data


@pytest.mark.parametrize("how", ["truncated", "garbage", "empty"])
def test_prepare_moves_a_corrupt_window_file_aside_and_rebuilds_it(
        prefect_api, store_dir, how, caplog):
    """A window file that no longer opens (even while Prefect's cache still points at it) is
    moved to `<id>.h5.corrupt-<time>` and written again, identical; the log says so."""
    path = Path(prepare("BTC_USDT", "MINUTE_5", past=32, future=8, data_dir=str(store_dir)))
    want = _contents(path)
    damaged = _damage(path, how)
    caplog.clear()
    again = Path(prepare("BTC_USDT", "MINUTE_5", past=32, future=8, data_dir=str(store_dir)))
    assert again == path
    assert _contents(again) == want  # rebuilt from the candles, dataset by dataset
    aside = sorted(path.parent.glob(f"{path.name}.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_bytes() == damaged
    assert sorted(p.name for p in path.parent.iterdir()) == sorted([path.name, aside[0].name])
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("moved aside" in m and aside[0].name in m for m in warned), warned
    assert not [r for r in caplog.records if r.levelname == "ERROR"]
    # A third run reuses the rebuilt file untouched.
    before = path.stat()
    assert Path(prepare("BTC_USDT", "MINUTE_5", past=32, future=8, data_dir=str(store_dir))) == path
    assert (path.stat().st_ino, path.stat().st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_train_on_a_corrupt_window_file_names_it_and_prepare_repairs_it(
        prefect_api, store_dir, capsys):
    """`train` on a damaged window file: exit 3, one line naming the file and the prepare
    command; running that command moves the file aside, and train finds intact windows."""
    from storage.windows.store import WindowStore

    spec = ["--past", "32", "--future", "8"]
    market = ["--symbol", "BTC_USDT", "--interval", "MINUTE_5"]
    assert cli_main(["prepare", *market, *spec, "--data-dir", str(store_dir)]) == 0
    path = Path(capsys.readouterr().out.splitlines()[0])
    _damage(path, "truncated")
    for how in (["--dataset", str(path)], ["--dataset", path.stem], market):
        argv = ["train", *how, "--models", "cnn2_relu", "--epochs", "1", "--data-dir",
                str(store_dir)]
        assert cli_main(argv) == 3, how
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and str(path) in err[0] and "`cryptoflow prepare" in err[0], err
        if how == market:
            assert "`cryptoflow prepare --symbol BTC_USDT --interval MINUTE_5`" in err[0]
    runs = DataLayout.at(store_dir).runs
    assert not runs.exists() or not any(runs.iterdir())  # nothing recorded for a refused train
    assert cli_main(["prepare", *market, *spec, "--data-dir", str(store_dir)]) == 0
    assert Path(capsys.readouterr().out.splitlines()[0]) == path
    found = WindowStore(DataLayout.at(store_dir).windows).locate(None, "BTC_USDT", "MINUTE_5")
    assert found == path.resolve()
    with h5py.File(found, "r") as f:
        assert f["inputs"].shape[1:] == (32, 1)
