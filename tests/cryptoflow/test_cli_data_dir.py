"""`--data-dir` as a URL: only schemes the mirror can write to, checked before any write.

A real HTTP server on 127.0.0.1 offers a data directory's files (as a careless user might point
``--data-dir`` at a web server); a ``file://`` and a ``memory://`` data dir run real prepare flows.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import h5py
import pytest

from cryptoflow.cli import main as cli_main
from storage.candles import CandleStore
from storage.layout import DataLayout
from storage.remote import check_data_dir
from tests.support.realdata import poloniex_5m

PREPARE = ["prepare", "--symbol", "BTC_USDT", "--interval", "MINUTE_5", "--past", "32",
           "--future", "4"]


class QuietHandler(SimpleHTTPRequestHandler):
    """Serves files without logging each request to stderr."""

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def http_folder(folder: Path) -> Iterator[str]:
    """A plain HTTP file server over ``folder`` on a free loopback port; yields its URL."""
    handler = functools.partial(QuietHandler, directory=str(folder))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=30)


def _store(data_dir: Path, rows: int = 3000) -> None:
    CandleStore(DataLayout.at(data_dir).candles).append(
        "BTC_USDT", "MINUTE_5", poloniex_5m().iloc[:rows]
    )


def test_read_only_url_schemes_are_refused_before_anything_is_written(
        tmp_path, monkeypatch, capsys):
    served = tmp_path / "served"
    _store(served / "data")
    cache = tmp_path / "cache"
    monkeypatch.setenv("CRYPTOFLOW_CACHE_DIR", str(cache))
    monkeypatch.chdir(tmp_path)
    with http_folder(served) as url:
        for data_dir in (f"{url}/data", "https://example.invalid/data", "ftp://127.0.0.1/data",
                         "HTTP://127.0.0.1/data"):
            assert cli_main([*PREPARE, "--data-dir", data_dir]) == 2, data_dir
            err = capsys.readouterr().err.strip().splitlines()
            assert len(err) == 1, err
            assert "data_dir" in err[0] and data_dir in err[0] and "s3://" in err[0], err[0]
        # ... and from the environment too
        monkeypatch.setenv("CRYPTOFLOW_DATA_DIR", f"{url}/data")
        assert cli_main(PREPARE) == 2
        assert "data_dir" in capsys.readouterr().err
    assert not cache.exists()  # nothing pulled, no mirror made
    assert sorted(p.name for p in tmp_path.iterdir()) == ["served"]  # nothing written locally


def test_writable_schemes_are_accepted_and_named_in_the_refusal():
    for url in ("s3://bucket/data", "gs://b/d", "az://c/d", "memory://x", "file:///tmp/d",
                "./data", "/abs/data"):
        assert check_data_dir(url) == url
    with pytest.raises(ValueError, match="data_dir: .*gopher://"):
        check_data_dir("gopher://example.invalid/data")


def test_file_url_data_dir_is_the_local_folder(prefect_api, tmp_path, monkeypatch, capsys):
    local = tmp_path / "data"
    _store(local)
    monkeypatch.chdir(tmp_path)
    assert cli_main([*PREPARE, "--data-dir", f"file://{local}"]) == 0
    path = Path(capsys.readouterr().out.strip().splitlines()[0])
    assert path.parent == local / "windows" and path.is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]  # no ./file: folder


def test_memory_url_data_dir_goes_through_the_mirror(prefect_api, tmp_path, monkeypatch, capsys):
    import fsspec

    staging = tmp_path / "staging"
    _store(staging)
    fs = fsspec.filesystem("memory")
    root = f"/cli-data-dir-{tmp_path.name}"
    for path in staging.rglob("*"):
        if path.is_file():
            fs.pipe_file(f"{root}/{path.relative_to(staging).as_posix()}", path.read_bytes())
    monkeypatch.setenv("CRYPTOFLOW_CACHE_DIR", str(tmp_path / "cache"))
    assert cli_main([*PREPARE, "--data-dir", f"memory://{root}"]) == 0
    name = Path(capsys.readouterr().out.strip().splitlines()[0]).name
    with fs.open(f"{root}/windows/{name}", "rb") as fh, h5py.File(fh, "r") as f:
        assert f.attrs["symbol"] == "BTC_USDT" and f["inputs"].shape[1:] == (32, 1)
