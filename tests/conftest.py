"""Shared fixtures: the real-data folder, a temporary Prefect home and a real Prefect test API."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from tasks.training.runtime import quiet_tensorflow_env
from tests.support.paths import SHARED_DATA_ENV, shared_data_dir

# Keep Prefect off the network and out of the user's home before anything imports it.
_PREFECT_HOME = tempfile.mkdtemp(prefix="cryptoflow-prefect-home-")
os.environ.setdefault("PREFECT_HOME", _PREFECT_HOME)
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
quiet_tensorflow_env()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    d = shared_data_dir()
    if not d.is_dir():
        pytest.skip(f"shared data folder {d} not found (set {SHARED_DATA_ENV})")
    return d


@pytest.fixture(scope="session")
def prefect_api():
    """A real, temporary Prefect API (SQLite) for the whole session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    d.mkdir()
    return d
