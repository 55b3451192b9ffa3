"""Where Prefect keeps the results and cache records of cached tasks: beside the data directory.

Prefect's default (``~/.prefect/storage``) is one host's disk, so a Cached training on host A is
invisible to host B. Here the result storage follows the data directory (setting
``result_storage``): ``<data dir>/.prefect-results`` by default, on S3 the data directory's URL
(the mirror never moves dot-folders, so results are written there directly, not through it); or
an absolute folder, an fsspec URL, or a saved storage block. Results stay JSON.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
from pathlib import Path

from storage.remote import is_remote, shared_location
from storage.settings import BLOCK_SLUG, settings

RESULTS_DIR = ".prefect-results"


def result_location(data_root: str | os.PathLike[str]) -> str:
    """The folder, URL or block slug where results of tasks on ``data_root`` live."""
    configured = settings().result_storage
    if configured:
        return configured
    return f"{shared_location(data_root).rstrip('/')}/{RESULTS_DIR}"


def result_storage_for(data_root: str | os.PathLike[str]) -> Path | str:
    """The ``result_storage`` of a task working on the data directory ``data_root``: a local
    folder (``Path``: the same on hosts that mount the data directory alike), or the name of a
    saved storage block: the configured one, or for a URL a ``remote-file-system`` block named
    after it (``cryptoflow-results-<hash>``, saved once per process; Prefect loads it)."""
    where = result_location(data_root)
    if re.fullmatch(BLOCK_SLUG, where):
        return where
    if is_remote(where):
        return _remote_block(where)
    path = Path(where.removeprefix("file://")).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


@functools.lru_cache(maxsize=16)
def _remote_block(url: str) -> str:
    from prefect.filesystems import RemoteFileSystem

    name = "cryptoflow-results-" + hashlib.sha256(url.encode()).hexdigest()[:16]
    RemoteFileSystem(basepath=url).save(name, overwrite=True)
    return f"remote-file-system/{name}"
