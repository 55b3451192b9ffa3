"""A data directory on object storage (``s3://bucket/prefix``, any fsspec URL), as a local mirror.

The stores (``storage/candles/``, windows, runs) keep working on local files: ``mirrored(url)``
downloads what is missing or changed into a local cache folder, yields that folder as the data
directory, and afterwards uploads every file that changed there, so other hosts see the same
data. Rules:

- Uploads never expose a partial object: each file is streamed to its final key with one
  ``PutObject`` (small files) or one multipart upload that S3 only makes visible when it is
  completed; an interrupted upload leaves the previous object (or none) in place. On stores
  without atomic object writes (``file://``, ``ssh``) the file goes to a hidden temporary name
  beside the target and is renamed into place.
- Files whose name starts with ``.`` (the stores' temporary files and lock files) never travel.
- Remote key names are untrusted: a key that is not a plain relative path inside the data
  directory (``//``, ``.``/``..`` parts, an absolute path, a backslash, NUL or another control
  character, or a path that resolves outside the cache, e.g. through a symlink) is refused:
  never downloaded, named in a warning and in ``SyncReport.refused``, never deleted by a push.
- Downloads are atomic too (``storage.atomic.atomic_path``); a local file is refreshed when the
  remote object's size or ETag differs from what the last sync recorded.
- A manifest ``.remote-manifest.json`` in the cache records, per relative path, the local size
  and mtime and the remote ETag seen at the last sync; a push sends files whose size or mtime
  changed since, and deletes remote objects whose local file was deleted (pruned checkpoints).
  A file never pulled is not in the manifest, so it is never deleted; to free the cache, remove
  the whole cache folder (manifest included), never single files in it.

What is pulled (setting ``mirror_pull``): ``touched`` (the default) pulls only what a stage
reads, so a run costs what it touches, not the store's history. ``mirrored(url, prefixes=...)``
pulls the prefixes a stage names (its series, window file, run) with one S3 listing per prefix,
and the stores ask for the rest as they open it (:func:`sync_scope`, called by
``CandleStore.series_dir``, ``WindowStore.path``, ``RunStore``'s readers, ``ReportStore`` and the
champion registry): each folder or file is listed and fetched at most once per mirror session,
and a file written in this session is never overwritten by a pull. ``all`` pulls every object
first (the old behaviour).

Concurrency: one writer per series at a time, across hosts (a Prefect global concurrency limit
per series, taken by the ingest flow, see ``storage/candles/locking.py``); object storage has no
``flock``, so two hosts appending to the same series at once would race (last upload wins).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import posixpath
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from storage.atomic import atomic_path, atomic_write_text
from storage.errors import BadInputError

MANIFEST = ".remote-manifest.json"
#: Protocols whose object writes are atomic (a PUT or a completed multipart upload).
ATOMIC_PUT = {"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "memory"}
#: URL schemes a data directory may have: the mirror can write there (``file`` is local).
WRITABLE_SCHEMES = ATOMIC_PUT | {"file", "sftp", "ssh"}
#: Bytes per multipart part and per streamed chunk (S3's minimum part size is 5 MiB).
CHUNK = 8 * 1024 * 1024
_URL = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
logger = logging.getLogger(__name__)


def is_remote(data_dir: str | os.PathLike[str] | None) -> bool:
    """Whether ``data_dir`` is an fsspec URL other than a plain local path / ``file://``."""
    text = os.fspath(data_dir) if data_dir is not None else ""
    return bool(_URL.match(text)) and not text.lower().startswith("file://")


def check_data_dir(data_dir: str, name: str = "data_dir") -> str:
    """``data_dir`` unchanged if it is a local path or a URL the mirror can write to; else
    ``BadInputError`` naming ``name`` (read-only schemes such as http://, https://, ftp://)."""
    text = os.fspath(data_dir)
    if _URL.match(text):
        scheme = text.split("://", 1)[0].lower()
        if scheme not in WRITABLE_SCHEMES:
            usable = ", ".join(f"{s}://" for s in sorted(WRITABLE_SCHEMES))
            raise BadInputError(
                f"{name}: cannot keep the stores at a {scheme}:// URL (the mirror cannot write "
                f"there); give a local folder or one of {usable} (got {text!r})"
            )
    return text


def local_data_dir(data_dir: str) -> str:
    """A ``file://`` URL as the local folder it names; anything else unchanged."""
    text = os.fspath(data_dir)
    if text.lower().startswith("file://"):
        from urllib.parse import unquote, urlsplit

        return unquote(urlsplit(text).path) or "/"
    return text


def default_cache(url: str) -> Path:
    """Local cache folder of ``url``: the ``cache_dir`` setting (``$CRYPTOFLOW_CACHE_DIR`` or
    ``~/.cache/cryptoflow``)."""
    from storage.settings import settings

    base = Path(settings().cache_dir).expanduser()
    digest = hashlib.sha256(url.rstrip("/").encode()).hexdigest()[:16]
    return base / f"mirror-{digest}"


@dataclass
class SyncReport:
    """What one pull or push moved (relative POSIX paths)."""

    transferred: list[str]
    deleted: list[str]
    skipped: int
    #: Remote names refused as unsafe (never downloaded; see ``name_problem``).
    refused: list[str] = field(default_factory=list)


class RemoteDataDir:
    """A remote data directory mirrored into a local cache folder."""

    def __init__(self, url: str, cache: Path | None = None,
                 storage_options: dict[str, Any] | None = None) -> None:
        import fsspec

        if not is_remote(url):
            raise ValueError(f"not a remote URL: {url!r} (use a local --data-dir instead)")
        check_data_dir(url)
        self.url = url.rstrip("/")
        self.fs, root = fsspec.core.url_to_fs(self.url, **(storage_options or {}))
        self.root = root.rstrip("/")
        self.protocol = _protocol(self.fs)
        self.cache = Path(cache) if cache is not None else default_cache(self.url)
        self.cache.mkdir(parents=True, exist_ok=True)
        self._guard = threading.RLock()
        self._started_ns = time.time_ns()
        #: Prefixes ("" = everything) pulled in this session: never listed again.
        self._pulled: set[str] = set()
        #: Files checked against the remote (or written) in this session: never pulled again.
        self._synced: set[str] = set()
        #: (folder, name) whose records were pulled in this session (:meth:`pull_files`).
        self._records: set[tuple[str, str]] = set()

    # ------------------------------------------------------------ manifest

    def _manifest(self) -> dict[str, dict[str, Any]]:
        path = self.cache / MANIFEST
        if not path.is_file():
            return {}
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}

    def _save_manifest(self, manifest: dict[str, dict[str, Any]]) -> None:
        atomic_write_text(self.cache / MANIFEST, json.dumps(manifest, sort_keys=True, indent=1))

    # ------------------------------------------------------------ paths

    def remote_path(self, rel: str) -> str:
        """Remote key of a relative path (validated: no ``..``, no absolute paths)."""
        return f"{self.root}/{safe_relative(rel)}"

    def local_path(self, rel: str) -> Path:
        """The cache file of a relative path; ``ValueError`` unless it stays inside the cache."""
        problem = name_problem(rel) or _outside(self.cache, rel)
        if problem:
            raise ValueError(f"bad relative path in a data directory: {rel!r} ({problem})")
        return self.cache / rel

    def local_files(self) -> dict[str, Path]:
        """Relative POSIX path -> local file, for every shareable file in the cache."""
        out: dict[str, Path] = {}
        for dirpath, dirnames, filenames in os.walk(self.cache):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in filenames:
                if name.startswith("."):
                    continue
                path = Path(dirpath) / name
                rel = path.relative_to(self.cache).as_posix()
                problem = name_problem(rel)
                if problem:  # e.g. a backslash: no key would name it faithfully
                    logger.warning("not uploading %s: %s", path, problem)
                    continue
                out[rel] = path
        return out

    def remote_files(self, prefix: str = "") -> dict[str, dict[str, Any]]:
        """Relative POSIX path -> object info (size, etag) for every shareable remote object
        (under ``prefix``: a folder or one file, relative to the data directory)."""
        return self._listing(safe_relative(prefix) if prefix else "")[0]

    def _listing(self, prefix: str = "") -> tuple[dict[str, dict[str, Any]], list[str]]:
        """(shareable objects by relative path, names refused as unsafe), under ``prefix``: one
        listing of that key prefix (S3: ``ListObjectsV2`` with ``Prefix=<root>/<prefix>/``,
        then a ``HeadObject`` when ``prefix`` is one file), never a listing of everything."""
        target = f"{self.root}/{prefix}" if prefix else self.root
        if not prefix and not self.fs.exists(self.root):
            return {}, []
        self.fs.invalidate_cache(target)
        try:
            found = self.fs.find(target, detail=True)
        except FileNotFoundError:
            found = {}
        out: dict[str, dict[str, Any]] = {}
        refused: list[str] = []
        root = self.root + "/"
        for key, info in found.items():
            key = key.rstrip("/")
            if info.get("type") == "directory" or not key.startswith(root):
                continue
            rel = key[len(root):]
            if prefix and not (rel == prefix or rel.startswith(prefix + "/")):
                continue
            problem = name_problem(rel) or _outside(self.cache, rel)
            if problem:
                logger.warning("refusing remote object %r under %s: %s (not downloaded)",
                               rel, self.url, problem)
                refused.append(rel)
                continue
            if any(part.startswith(".") for part in rel.split("/")):
                continue  # temporary and lock files never travel
            out[rel] = {"size": int(info.get("size") or 0), "etag": _etag(info)}
        return out, refused

    # ------------------------------------------------------------ sync

    def covered(self, rel: str) -> bool:
        """Whether ``rel`` (or a folder above it) was already pulled in this session, or it is
        a file already synced in it."""
        if "" in self._pulled or rel in self._pulled or rel in self._synced:
            return True
        parts = rel.split("/")
        return any("/".join(parts[:i]) in self._pulled for i in range(1, len(parts)))

    def ensure(self, rel: str) -> SyncReport | None:
        """Pull ``rel`` (a folder or one file) unless this session already did; None then.

        A name that never travels (a part starting with ``.``) or is unsafe pulls nothing."""
        rel = rel.rstrip("/")
        if rel and (name_problem(rel) or any(p.startswith(".") for p in rel.split("/"))):
            return None
        with self._guard:
            if self.covered(rel):
                return None
            return self.pull(rel)

    def pull(self, prefix: str = "") -> SyncReport:
        """Download remote objects (under ``prefix``: one listing of it) missing or changed in
        the cache; a file already synced or written in this session is left as it is."""
        prefix = safe_relative(prefix) if prefix else ""
        with self._guard:
            manifest = self._manifest()
            done, skipped = [], 0
            found, refused = self._listing(prefix)
            for rel, info in sorted(found.items()):
                local = self.local_path(rel)
                seen = manifest.get(rel, {})
                if rel in self._synced or (local.is_file() and (
                        _stat(local)[1] >= self._started_ns
                        or (seen.get("etag") == info["etag"]
                            and seen.get("remote_size") == info["size"]
                            and _stat(local) == (seen.get("size"), seen.get("mtime_ns"))))):
                    skipped += 1
                    self._synced.add(rel)
                    continue
                local.parent.mkdir(parents=True, exist_ok=True)
                with atomic_path(local) as tmp:
                    self.fs.get_file(self.remote_path(rel), str(tmp))
                size, mtime_ns = _stat(local)
                manifest[rel] = {"size": size, "mtime_ns": mtime_ns, "etag": info["etag"],
                                 "remote_size": info["size"]}
                self._synced.add(rel)
                done.append(rel)
            self._pulled.add(prefix)
            if done:
                self._save_manifest(manifest)
            return SyncReport(done, [], skipped, refused)

    def pull_files(self, folder: str, name: str) -> SyncReport:
        """Pull the file ``name`` of every subfolder of ``folder`` missing from the cache
        (``runs``, ``run.json``: every run's record, no checkpoint): one delimited listing of
        ``folder`` (S3: a page per 1,000 subfolders), then the new records fetched
        concurrently (one GET each, a subfolder without one skipped); a record
        already in the cache is not checked again, nor the folder in this session."""
        folder = safe_relative(folder)
        with self._guard:
            if self.covered(folder) or (folder, name) in self._records:
                return SyncReport([], [], 0)
            self._records.add((folder, name))
            target = f"{self.root}/{folder}"
            self.fs.invalidate_cache(target)
            try:
                entries = self.fs.ls(target, detail=True)
            except FileNotFoundError:
                entries = []
            wanted, skipped = [], 0
            for entry in entries:
                if entry.get("type") != "directory":
                    continue
                sub = posixpath.basename(str(entry["name"]).rstrip("/"))
                rel = f"{folder}/{sub}/{name}"
                if sub.startswith(".") or name_problem(rel) or self.covered(rel):
                    continue
                if (self.cache / rel).is_file():
                    skipped += 1
                else:
                    wanted.append(rel)
            if not wanted:
                return SyncReport([], [], skipped)
            with ThreadPoolExecutor(max_workers=min(16, len(wanted))) as pool:
                bodies = list(pool.map(self._read_or_none, wanted))
            manifest, done = self._manifest(), []
            for rel, body in zip(wanted, bodies, strict=True):
                if body is None:
                    continue
                local = self.local_path(rel)
                local.parent.mkdir(parents=True, exist_ok=True)
                with atomic_path(local) as tmp:
                    Path(tmp).write_bytes(body)
                size, mtime_ns = _stat(local)
                # A single-PUT S3 object's ETag is its MD5; elsewhere a mismatch only means
                # one more download of this small record later.
                manifest[rel] = {"size": size, "mtime_ns": mtime_ns,
                                 "etag": hashlib.md5(body).hexdigest(),  # noqa: S324
                                 "remote_size": len(body)}
                self._synced.add(rel)
                done.append(rel)
            if done:
                self._save_manifest(manifest)
            return SyncReport(done, [], skipped)

    def _read_or_none(self, rel: str) -> bytes | None:
        """The bytes of one remote object (one GET), None when it is not there."""
        try:
            # s3fs: max_concurrency=1 skips the HEAD it sends to split a large object.
            extra = {"max_concurrency": 1} if self.protocol in ("s3", "s3a") else {}
            return self.fs.cat_file(self.remote_path(rel), **extra)
        except FileNotFoundError:
            return None

    def push(self, on_chunk: Callable[[str, int], None] | None = None) -> SyncReport:
        """Upload files changed in the cache since the last sync; delete remote files removed."""
        with self._guard:
            return self._push(on_chunk)

    def _push(self, on_chunk: Callable[[str, int], None] | None) -> SyncReport:
        manifest = self._manifest()
        local = self.local_files()
        done, deleted, skipped = [], [], 0
        for rel, path in sorted(local.items()):
            size, mtime_ns = _stat(path)
            seen = manifest.get(rel, {})
            if (seen.get("size"), seen.get("mtime_ns")) == (size, mtime_ns):
                skipped += 1
                continue
            self.upload(path, rel, on_chunk)
            info = self.fs.info(self.remote_path(rel))
            manifest[rel] = {"size": size, "mtime_ns": mtime_ns, "etag": _etag(info),
                             "remote_size": int(info.get("size") or 0)}
            done.append(rel)
            self._synced.add(rel)
        for rel in sorted(set(manifest) - set(local)):
            if name_problem(rel):  # never recorded by this code; never act on such a key
                del manifest[rel]
                continue
            with contextlib.suppress(FileNotFoundError):
                self.fs.rm_file(self.remote_path(rel))
            del manifest[rel]
            deleted.append(rel)
        self._save_manifest(manifest)
        return SyncReport(done, deleted, skipped)

    def upload(self, path: Path, rel: str,
               on_chunk: Callable[[str, int], None] | None = None) -> None:
        """Stream one file to its key so that no partial object is ever visible there."""
        target = self.remote_path(rel)
        atomic = self.protocol in ATOMIC_PUT
        parent, name = posixpath.split(target)
        dest = target if atomic else f"{parent}/.{name}.{os.getpid()}.tmp"
        if not atomic:
            self.fs.makedirs(parent, exist_ok=True)
        sent = 0
        # S3: bytes below block_size go in one PutObject at close(); more start a multipart
        # upload whose parts stay invisible until close() completes it. Not a `with` block:
        # leaving one on an exception would close(), i.e. commit the partial object.
        out = self.fs.open(dest, "wb", block_size=CHUNK)
        try:
            with open(path, "rb") as src:
                while chunk := src.read(CHUNK):
                    out.write(chunk)
                    sent += len(chunk)
                    if on_chunk is not None:
                        on_chunk(rel, sent)
        except BaseException:
            _discard(out)
            if not atomic:
                with contextlib.suppress(Exception):
                    self.fs.rm_file(dest)
            raise
        out.close()
        if not atomic:
            self.fs.mv(dest, target)


#: The mirrors open in this process (their stores call :func:`sync_scope`).
_ACTIVE: list[RemoteDataDir] = []
_ACTIVE_GUARD = threading.Lock()


@contextlib.contextmanager
def mirrored(data_dir: str | os.PathLike[str] | None, cache: Path | None = None,
             storage_options: dict[str, Any] | None = None,
             prefixes: Iterable[str] = ()) -> Iterator[str | None]:
    """Yield a local data directory for ``data_dir``; for a remote URL, a synced mirror.

    Local paths (and None) pass through untouched. For a URL: pull ``prefixes`` (relative
    folders or files a stage reads: ``candles/exchange=poloniex/symbol=BTC_USDT/interval=MINUTE_5``,
    ``windows/<id>.h5``, ``runs/<run-id>``; everything with the ``mirror_pull=all`` setting)
    before the block, what the stores open inside it as they open it (:func:`sync_scope`), and
    push after the block what changed (also when it raised, so completed files are not lost; a
    half-written file never exists under its final name locally, so it is never uploaded).
    """
    if data_dir is None or not is_remote(data_dir):
        yield None if data_dir is None else local_data_dir(check_data_dir(os.fspath(data_dir)))
        return
    from storage.settings import MirrorPull, settings

    remote = RemoteDataDir(os.fspath(data_dir), cache, storage_options)
    if settings().mirror_pull is MirrorPull.ALL:
        remote.pull()
    for prefix in prefixes:
        remote.ensure(safe_relative(prefix))
    with _ACTIVE_GUARD:
        _ACTIVE.append(remote)
    try:
        yield str(remote.cache)
    finally:
        with _ACTIVE_GUARD:
            _ACTIVE.remove(remote)
        remote.push()


def _open_mirror(path: str | os.PathLike[str]) -> tuple[RemoteDataDir, str] | None:
    """The open mirror whose cache holds ``path``, and ``path`` relative to it; else None."""
    target = Path(os.path.abspath(path))
    with _ACTIVE_GUARD:
        open_now = list(_ACTIVE)
    for remote in open_now:
        rel = _relative_to(target, remote.cache)
        if rel is not None:
            return remote, rel
    return None


def sync_scope(path: str | os.PathLike[str]) -> None:
    """Before a store reads ``path`` (a folder or file of a mirrored data directory), pull it
    from the remote once per mirror session; a no-op for a path outside every open mirror."""
    if _ACTIVE and (found := _open_mirror(path)) is not None:
        remote, rel = found
        remote.ensure(rel)


def sync_records(folder: str | os.PathLike[str], name: str) -> None:
    """Before a store lists the subfolders of ``folder`` by their ``name`` file (``runs/*/
    run.json``), pull the records missing from the cache (:meth:`RemoteDataDir.pull_files`)."""
    if _ACTIVE and (found := _open_mirror(folder)) is not None:
        remote, rel = found
        if rel:
            remote.pull_files(rel, name)
        else:
            remote.ensure("")


def shared_location(path: str | os.PathLike[str]) -> str:
    """The name every host gives ``path``: inside an open mirror, the remote URL of it
    (``s3://bucket/data/runs/…``, the same on every host whatever its cache folder); else the
    absolute local path (the same on hosts that mount a shared data directory alike)."""
    found = _open_mirror(path)
    if found is None:
        return os.path.abspath(path)
    remote, rel = found
    return f"{remote.url}/{rel}" if rel else remote.url


def _relative_to(target: Path, cache: Path) -> str | None:
    """``target`` relative to ``cache`` as POSIX text ("" for the cache itself), else None."""
    for root in (Path(os.path.abspath(cache)), cache.resolve()):
        try:
            rel = target.relative_to(root).as_posix()
        except ValueError:
            continue
        return "" if rel == "." else rel
    return None


def name_problem(rel: str) -> str | None:
    """Why ``rel`` is not a plain relative POSIX path inside a data directory (None if it is)."""
    if not rel:
        return "an empty name"
    if _CONTROL.search(rel):
        return "a NUL or control character"
    if "\\" in rel:
        return "a backslash"
    if rel.startswith("/"):
        return "an absolute path"
    if "//" in rel:
        return "an empty path part (//)"
    if any(part in (".", "..") for part in rel.rstrip("/").split("/")):
        return "a '.' or '..' part"
    return None


def safe_relative(rel: str) -> str:
    """A relative POSIX path inside the data directory (ValueError for ``..``/absolute/...)."""
    text = rel.rstrip("/") if rel else ""
    problem = name_problem(text)
    if problem:
        raise ValueError(f"bad relative path in a data directory: {rel!r} ({problem})")
    return text


def _outside(cache: Path, rel: str) -> str | None:
    """A problem text when ``cache/rel`` resolves outside ``cache`` (through a symlink)."""
    root = cache.resolve()
    if not (cache / rel).resolve().is_relative_to(root):
        return f"resolves outside the cache {root}"
    return None


def _discard(out: Any) -> None:
    """Abandon an unfinished remote file without committing it (aborts a multipart upload)."""
    with contextlib.suppress(Exception):
        out.discard()
    try:
        out.closed = True  # so neither close() nor __del__ commits what was written
    except AttributeError:  # a plain file object (local temp name): close it, caller removes it
        with contextlib.suppress(Exception):
            out.close()


def _protocol(fs: Any) -> str:
    proto = fs.protocol
    return (proto[0] if isinstance(proto, (tuple, list)) else proto).lower()


def _etag(info: dict[str, Any]) -> str | None:
    value = info.get("ETag") or info.get("etag") or info.get("md5")
    if value is None:
        mtime = info.get("mtime") or info.get("LastModified") or info.get("created")
        return f"{info.get('size')}-{mtime}" if mtime is not None else None
    return str(value).strip('"')


def _stat(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_size, st.st_mtime_ns
