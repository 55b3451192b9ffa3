"""Support: where the repository and the recorded market data are (skip when it is absent)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA_ENV = "CRYPTO_SHARED_DATA"


def shared_data_dir() -> Path:
    """``$CRYPTO_SHARED_DATA`` or ``../shared/data`` beside the checkout."""
    return Path(os.environ.get(SHARED_DATA_ENV, REPO_ROOT.parent / "shared" / "data")).resolve()


def shared_file(name: str) -> Path:
    """Path of a real-data file, or skip the test with a clear reason when it is absent."""
    path = shared_data_dir() / name
    if not path.exists():
        pytest.skip(
            f"real market data {name} not found under {shared_data_dir()} "
            f"(set {SHARED_DATA_ENV} to the shared data folder)"
        )
    return path
