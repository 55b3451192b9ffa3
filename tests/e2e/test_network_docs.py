"""The docs never tell anyone to expose the Prefect API or a Dask scheduler without a warning."""

from __future__ import annotations

import re

import pytest

from tests.support.paths import REPO_ROOT

DOCS = ["README.md", "docs/SCALE_OUT.md"]


def _prose(name: str) -> str:
    """The file's text, block-quote markers dropped and whitespace collapsed."""
    lines = [re.sub(r"^\s*>\s?", "", line) for line in (REPO_ROOT / name).read_text().splitlines()]
    return " ".join(" ".join(lines).split())


@pytest.mark.parametrize("name", DOCS)
def test_no_command_binds_every_interface(name):
    text = (REPO_ROOT / name).read_text()
    assert not re.search(r"--host\s+0\.0\.0\.0", text), f"{name} binds a service to 0.0.0.0"


def test_scale_out_warns_and_shows_auth_tls_and_a_private_network():
    text = _prose("docs/SCALE_OUT.md")
    prefect, dask = text.split("## 2.", 1)
    assert "Warning" in prefect and "no authentication by default" in prefect
    for needed in ("PREFECT_SERVER_API_AUTH_STRING", "PREFECT_API_AUTH_STRING", "private", "TLS"):
        assert needed in prefect, needed
    assert "Warning" in dask and "pickled" in dask and "arbitrary code" in dask
    for needed in ("--tls-ca-file", "--tls-cert", "--tls-key", "tls://",
                   "DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT", "private"):
        assert needed in dask, needed


def test_readme_warns_where_it_shows_a_shared_server():
    text = _prose("README.md")
    assert "PREFECT_SERVER_API_AUTH_STRING" in text and "pickled code" in text
