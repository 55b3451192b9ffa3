"""Cached hits across hosts: task results and cache records live beside the data directory.

Two "hosts" are two processes with their own ``PREFECT_HOME`` (so their own
``~/.prefect/storage``) and one real ``prefect server``. Host A trains a model; host B asks for
the same training on the same data directory and gets a Cached task run (no training process,
no resume), because the result storage is ``<data dir>/.prefect-results``, not host A's home.
A host configured to keep results elsewhere does not see A's cache: it resumes instead.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from storage.errors import BadInputError
from storage.settings import settings
from tasks.results import RESULTS_DIR, result_location
from tests.support.paths import REPO_ROOT
from tests.support.servers import (
    VENV_BIN,
    background,
    base_env,
    free_port,
    prefect_server,
    wait_http,
)
from tests.support.windows import write_real_windows

TRAIN = """
import json, sys
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from flows.train import train
from storage.remote import mirrored
data_dir, dataset = sys.argv[1], sys.argv[2]
with mirrored(data_dir) as local:  # an s3:// data dir through this host's own cache folder
    state = train(models=["cnn2_relu"], epochs=1, batch_size=64, dataset=dataset,
                  data_dir=local, devices="cpu", seed=4, run_id="shared-run", return_state=True)
flow_run_id = state.state_details.flow_run_id
with get_client(sync_client=True) as client:
    runs = client.read_task_runs(
        flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
print(json.dumps({"run_id": state.result(),
                  "states": {r.name: r.state.name for r in runs if r.name == "cnn2_relu"}}))
"""


def test_result_location_follows_the_data_dir(tmp_path, monkeypatch):
    monkeypatch.delenv("CRYPTOFLOW_RESULT_STORAGE", raising=False)
    assert result_location(tmp_path) == f"{tmp_path}/{RESULTS_DIR}"
    monkeypatch.setenv("CRYPTOFLOW_RESULT_STORAGE", "s3-bucket/cryptoflow-results")
    assert result_location(tmp_path) == "s3-bucket/cryptoflow-results"
    monkeypatch.setenv("CRYPTOFLOW_RESULT_STORAGE", "relative/folder/x")
    with pytest.raises(BadInputError, match="CRYPTOFLOW_RESULT_STORAGE"):
        settings()


def train_on_host(tmp_path: Path, api: str, host: str, data_dir: Path | str,
                  dataset: Path | str, **extra: str) -> dict:
    home = tmp_path / f"home-{host}"
    home.mkdir(exist_ok=True)
    env = base_env(home, PREFECT_API_URL=api, PYTHONPATH=str(REPO_ROOT), **extra)
    proc = subprocess.run([sys.executable, "-c", TRAIN, str(data_dir), str(dataset)], env=env,
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr[-4000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_a_second_host_gets_the_cached_training(tmp_path):
    data_dir = tmp_path / "data"
    dataset = write_real_windows(data_dir / "windows" / "w.h5", 64, 4, stride=16)
    (tmp_path / "server-home").mkdir()
    with prefect_server(tmp_path / "server-home", tmp_path / "server.log") as api:
        first = train_on_host(tmp_path, api, "a", data_dir, dataset)
        assert first["states"] == {"cnn2_relu": "Completed"}
        assert list((data_dir / RESULTS_DIR).iterdir())  # the record is beside the data
        assert not (tmp_path / "home-a" / "storage").exists() or not list(
            (tmp_path / "home-a" / "storage").iterdir())  # and not in host A's home
        second = train_on_host(tmp_path, api, "b", data_dir, dataset)
        assert second == {"run_id": "shared-run", "states": {"cnn2_relu": "Cached"}}
        # A host that keeps results elsewhere sees no record: it runs (and resumes) instead.
        elsewhere = train_on_host(tmp_path, api, "c", data_dir, dataset,
                                  CRYPTOFLOW_RESULT_STORAGE=str(tmp_path / "elsewhere"))
        assert elsewhere["states"] == {"cnn2_relu": "Completed"}


DATASET_ID = "0123456789abcdef0123"
AWS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
       "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.mark.slow
def test_a_second_host_gets_the_cached_training_on_s3(tmp_path, monkeypatch):
    """The data directory on S3 (moto), each host with its own cache folder: host B's training
    is Cached, its key naming the S3 paths, the record written under the bucket's
    ``.prefect-results`` (never mirrored, never in a host's home)."""
    import boto3

    from storage.remote import RemoteDataDir

    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    aws = {**AWS, "AWS_ENDPOINT_URL": endpoint}
    for key, value in aws.items():
        monkeypatch.setenv(key, value)
    url = "s3://shared-cache/data"
    with background([str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                    {**os.environ, **aws}, tmp_path / "moto.log"):
        wait_http(endpoint, timeout=60)
        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        client.create_bucket(Bucket="shared-cache")
        seed = tmp_path / "seed"
        write_real_windows(seed / "windows" / f"{DATASET_ID}.h5", 64, 4, stride=16)
        RemoteDataDir(url, cache=seed).push()
        (tmp_path / "server-home").mkdir()
        with prefect_server(tmp_path / "server-home", tmp_path / "server.log") as api:
            first = train_on_host(tmp_path, api, "a", url, DATASET_ID, **aws,
                                  CRYPTOFLOW_CACHE_DIR=str(tmp_path / "cache-a"))
            assert first["states"] == {"cnn2_relu": "Completed"}
            second = train_on_host(tmp_path, api, "b", url, DATASET_ID, **aws,
                                   CRYPTOFLOW_CACHE_DIR=str(tmp_path / "cache-b"))
            assert second == {"run_id": "shared-run", "states": {"cnn2_relu": "Cached"}}
        keys = [o["Key"] for o in client.list_objects_v2(Bucket="shared-cache")["Contents"]]
        assert any(k.startswith(f"data/{RESULTS_DIR}/") for k in keys), keys
        assert any(k.startswith("data/runs/shared-run/cnn2_relu/") for k in keys)
