"""A stage's pull from an S3 data directory touches only what the stage reads.

moto's standalone server on 127.0.0.1 logs every request it serves; the tests count those
lines. With 10 or 120 unrelated runs in the bucket, a stage's mirror lists exactly its own
prefixes (one ``ListObjectsV2`` each, never a listing of the whole data directory), fetches
exactly its own objects, and pushes only the file it changed.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from storage.champions import ChampionRegistry
from storage.errors import BadInputError
from storage.layout import DataLayout, stage_prefixes
from storage.remote import mirrored
from storage.runs import RunStore
from storage.settings import settings
from tests.support.servers import VENV_BIN, background, free_port, wait_http

BUCKET = "cryptoflow-scope"
AWS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
       "AWS_DEFAULT_REGION": "us-east-1"}
SERIES = "candles/exchange=poloniex/symbol=BTC_USDT/interval=MINUTE_5"
DATASET = "0123456789abcdef0123"
RUN = "20260101T000000Z-mine"
_REQUEST = re.compile(r'"(?P<method>[A-Z]+) (?P<target>\S+) HTTP/[0-9.]+" (?P<status>\d+)')


class Moto:
    """moto's server: its endpoint and the requests it logged since :meth:`mark`."""

    def __init__(self, url: str, log: Path) -> None:
        self.url, self.log, self._offset = url, log, 0

    def mark(self) -> None:
        time.sleep(0.2)  # the server writes its log line after the response
        self._offset = self.log.stat().st_size

    def requests(self) -> list[tuple[str, str, dict[str, list[str]]]]:
        """(method, unquoted path, query) of every request since the last mark."""
        time.sleep(0.2)
        with self.log.open("rb") as fh:
            fh.seek(self._offset)
            text = fh.read().decode(errors="replace")
        out = []
        for match in _REQUEST.finditer(text):
            parts = urlsplit(match["target"])
            out.append((match["method"], unquote(parts.path), parse_qs(parts.query)))
        return out


@pytest.fixture(scope="module")
def moto(tmp_path_factory):
    import boto3

    tmp = tmp_path_factory.mktemp("moto-scope")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with background([str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                    {**os.environ, **AWS}, tmp / "moto.log"):
        wait_http(url, timeout=60)
        boto3.client("s3", endpoint_url=url, **_boto()).create_bucket(Bucket=BUCKET)
        yield Moto(url, tmp / "moto.log")


@pytest.fixture
def s3_env(moto, monkeypatch):
    """AWS settings for this moto server. fsspec caches one S3FileSystem per set of options,
    not per endpoint in the environment: cleared before and after, so neither this module nor
    the next one talks to another module's (stopped) server."""
    import s3fs

    for key, value in {**AWS, "AWS_ENDPOINT_URL": moto.url}.items():
        monkeypatch.setenv(key, value)
    s3fs.S3FileSystem.clear_instance_cache()
    yield
    s3fs.S3FileSystem.clear_instance_cache()


def _boto() -> dict[str, str]:
    return {"aws_access_key_id": AWS["AWS_ACCESS_KEY_ID"],
            "aws_secret_access_key": AWS["AWS_SECRET_ACCESS_KEY"],
            "region_name": AWS["AWS_DEFAULT_REGION"]}


def seed_bucket(moto: Moto, root: str, unrelated_runs: int) -> dict[str, bytes]:
    """The stage's own objects (returned, by relative path) plus ``unrelated_runs`` other runs
    (run.json, a history and two checkpoints each) and their reports, other series, windows."""
    import boto3

    client = boto3.client("s3", endpoint_url=moto.url, **_boto())
    mine = {
        f"{SERIES}/year=2017/month=07/part.parquet": b"july",
        f"{SERIES}/year=2017/month=08/part.parquet": b"august",
        f"windows/{DATASET}.h5": b"windows",
        f"runs/{RUN}/run.json": b'{"run_id": "%s", "created": "2026"}' % RUN.encode(),
        f"runs/{RUN}/cnn2_relu/history.csv": b"epoch,loss,val_loss,seconds\n",
        "reports/champions.json": b'{"champions": [], "challengers": []}',
    }
    others: dict[str, bytes] = {
        "candles/exchange=poloniex/symbol=ETH_USDT/interval=MINUTE_5/year=2017/month=07/"
        "part.parquet": b"other series",
        # A neighbour whose name starts with the stage's run id: not under its folder.
        f"runs/{RUN}-2/run.json": b"{}",
    }
    for i in range(unrelated_runs):
        run = f"20250101T{i:06d}Z-other"
        others |= {
            f"runs/{run}/run.json": b'{"created": "2025-%06d"}' % i,
            f"runs/{run}/cnn2_relu/history.csv": b"h",
            f"runs/{run}/cnn2_relu/checkpoints/epoch-001-0.1.keras": b"c" * 64,
            f"runs/{run}/cnn2_relu/checkpoints/epoch-002-0.2.keras": b"c" * 64,
            f"reports/{run}/report.html": b"<html/>",
            f"windows/{i:020x}.h5": b"w",
        }
    for rel, body in (mine | others).items():
        client.put_object(Bucket=BUCKET, Key=f"{root}/{rel}", Body=body)
    return mine


def files_in(cache: Path) -> set[str]:
    return {p.relative_to(cache).as_posix() for p in cache.rglob("*")
            if p.is_file() and not p.name.startswith(".")}


def run_stage(moto: Moto, root: str, cache: Path) -> list[tuple[str, str, dict[str, list[str]]]]:
    """A report-like stage: its series, window file and run pulled first; the champion registry
    opened on demand; one file written. The requests it made."""
    moto.mark()
    prefixes = stage_prefixes(["BTC_USDT"], "MINUTE_5", DATASET, RUN)
    with mirrored(f"s3://{BUCKET}/{root}", cache=cache, prefixes=prefixes) as local:
        layout = DataLayout.at(local)
        assert RunStore(layout.runs).read_run(RUN)["run_id"] == RUN
        assert ChampionRegistry(layout.reports).records() == []
        (layout.reports / RUN).mkdir(parents=True, exist_ok=True)
        (layout.reports / RUN / "report.html").write_text("<html>mine</html>")
    return moto.requests()


def lists(requests) -> list[str]:
    """The ``prefix`` of every ListObjectsV2 request."""
    return [q.get("prefix", [""])[0] for m, _, q in requests if m == "GET" and "list-type" in q]


def gets(requests, root: str) -> list[str]:
    """Relative paths of every object downloaded."""
    head = f"/{BUCKET}/{root}/"
    return [p[len(head):] for m, p, q in requests
            if m == "GET" and "list-type" not in q and p.startswith(head)]


@pytest.mark.parametrize("unrelated_runs", [10, 120])
def test_a_stage_pulls_only_its_prefixes(moto, s3_env, tmp_path, unrelated_runs):
    root = f"history-{unrelated_runs}/data"
    mine = seed_bucket(moto, root, unrelated_runs)
    cache = tmp_path / "cache"
    requests = run_stage(moto, root, cache)

    # Listed: each of the stage's prefixes once (plus s3fs's one-key probe of a prefix that
    # turned out empty), never the data directory's root, never "runs/" or "windows/".
    listed = {p.rstrip("/") for p in lists(requests)}
    wanted = {f"{root}/{p}" for p in [SERIES, f"windows/{DATASET}.h5", f"runs/{RUN}",
                                      f"reports/{RUN}", "reports/champions.json"]}
    assert listed <= wanted, listed - wanted
    assert f"{root}" not in listed and f"{root}/runs" not in listed
    # Fetched: exactly the stage's objects; cached: those and the one report it wrote.
    assert sorted(gets(requests, root)) == sorted(mine)
    assert files_in(cache) == set(mine) | {f"reports/{RUN}/report.html"}
    puts = [p for m, p, _ in requests if m == "PUT"]
    assert puts == [f"/{BUCKET}/{root}/reports/{RUN}/report.html"]
    # The cost does not grow with the history: the same number of requests at 10 and 120 runs.
    assert len(requests) <= 25, requests

    # A second run of the stage on the warm cache: listings, nothing fetched; the one file it
    # wrote again is the one file sent.
    again = run_stage(moto, root, cache)
    assert gets(again, root) == []
    assert [p for m, p, _ in again if m == "PUT"] == puts
    assert len(again) <= len(requests)


def test_run_listing_fetches_records_not_checkpoints(moto, s3_env, tmp_path):
    """``RunStore.runs()`` under a mirror: one delimited listing of runs/, then one GET of each
    run's run.json (not its checkpoints); a second call in the same session asks nothing."""
    root = "records/data"
    seed_bucket(moto, root, 5)
    cache = tmp_path / "cache"
    with mirrored(f"s3://{BUCKET}/{root}", cache=cache) as local:
        moto.mark()
        runs = RunStore(DataLayout.at(local).runs).runs()
        first = moto.requests()
        moto.mark()
        store = RunStore(DataLayout.at(local).runs)
        assert store.runs() == runs
        assert all(store.read_run(r) is not None for r in runs)  # records read: no request
        assert moto.requests() == []
    assert RUN in runs and len(runs) == 7  # 5 others, the neighbour, the stage's run
    assert sorted(gets(first, root)) == sorted(f"runs/{r}/run.json" for r in runs)
    assert lists(first) == [f"{root}/runs/"]  # one delimited listing, no listing per run
    assert len(first) == 1 + len(runs)  # and one GET per record: no HEAD, nothing else
    assert not [p for p in files_in(cache) if "checkpoints" in p]


def test_mirror_pull_all_still_pulls_everything(moto, s3_env, tmp_path, monkeypatch):
    root = "everything/data"
    mine = seed_bucket(moto, root, 3)
    monkeypatch.setenv("CRYPTOFLOW_MIRROR_PULL", "all")
    with mirrored(f"s3://{BUCKET}/{root}", cache=tmp_path / "cache") as local:
        cached = files_in(Path(local))
    assert set(mine) < cached and len(cached) == len(mine) + 2 + 3 * 6


def test_bad_mirror_pull_setting_is_refused(monkeypatch):
    monkeypatch.setenv("CRYPTOFLOW_MIRROR_PULL", "some")
    with pytest.raises(BadInputError, match="CRYPTOFLOW_MIRROR_PULL"):
        settings()


def test_stage_prefixes_of_a_command():
    assert stage_prefixes(["BTC_USDT", "ETH_USDT"], "MINUTE_5") == [
        SERIES, SERIES.replace("BTC_USDT", "ETH_USDT")]
    assert stage_prefixes(None, None, DATASET, RUN) == [
        f"windows/{DATASET}.h5", f"runs/{RUN}", f"reports/{RUN}"]
    assert stage_prefixes("BAD SYMBOL", "MINUTE_5", "/etc/passwd", "../x") == []
