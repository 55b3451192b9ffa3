"""Atomic file writes: write to a temporary name in the same folder, fsync, rename into place.

The temporary file is ``.<target name>.<random><suffix>.tmp``; its writer holds an exclusive
``flock`` on it from creation until the rename, so :func:`remove_stale_temporaries` can tell a
temporary whose writer is gone (crashed, killed) from one being written right now.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

#: Suffix of every temporary file ``atomic_path`` makes.
TEMP_SUFFIX = ".tmp"
#: A temporary nobody holds is removed only once it has not changed for this long (seconds):
#: protects writers the lock cannot show (another host on a shared folder, older versions).
STALE_AFTER_S = 60.0
#: Without file locks, a live writer cannot be seen: wait much longer before removing.
_NO_LOCKS_STALE_AFTER_S = 3600.0
_ATTEMPTS = 5
logger = logging.getLogger(__name__)


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str], suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success rename it over ``target``.

    On any exception the temporary file is removed and ``target`` is left untouched, so a
    reader never sees a half-written file. The writer's lock on the temporary file is held
    until the rename; whoever writes to the yielded path must not ``flock`` it (h5py:
    ``locking=False``).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_path = _locked_temporary(target, suffix + TEMP_SUFFIX)
    try:
        yield tmp_path
        os.fsync(fd)
        os.replace(tmp_path, target)
        _fsync_dir(target.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise
    finally:
        os.close(fd)  # releases the lock, after the temporary name is gone


def _locked_temporary(target: Path, suffix: str) -> tuple[int, Path]:
    """A new temporary file beside ``target`` (mode as ``open()`` gives) and its locked fd."""
    for _ in range(_ATTEMPTS):
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=target.parent)
        # mkstemp creates 0600; give the file the mode a plain open() would (0666 minus umask).
        os.fchmod(fd, 0o666 & ~_umask())
        if _lock(fd, blocking=True) is None:
            return fd, Path(tmp)  # the filesystem has no locks: the idle bound protects it
        # A cleaner may have removed the name between mkstemp and the lock: check it is ours.
        with contextlib.suppress(FileNotFoundError):
            if os.stat(tmp).st_ino == os.fstat(fd).st_ino:
                return fd, Path(tmp)
        os.close(fd)
    raise OSError(f"could not create a temporary file beside {target}")


def remove_stale_temporaries(
    folder: str | os.PathLike[str], suffix: str = TEMP_SUFFIX, stale_after_s: float = STALE_AFTER_S
) -> list[Path]:
    """Remove the temporaries (``.*<suffix>``) in ``folder`` left by writers that are gone.

    A temporary is removed when no process holds its writer's lock and it has not changed for
    ``stale_after_s`` seconds; one whose writer is alive is never touched. Returns the removed.
    """
    folder = Path(folder)
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    now = time.time()
    for path in sorted(folder.glob(f".*{suffix}")):
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
        except OSError:
            continue  # gone already, a symlink, or not ours to open
        try:
            held = _lock(fd, blocking=False)
            if held is False:
                continue  # a live writer holds it
            st = os.fstat(fd)
            idle = stale_after_s if held else max(stale_after_s, _NO_LOCKS_STALE_AFTER_S)
            if now - st.st_mtime < idle:
                continue
            with contextlib.suppress(FileNotFoundError):
                if os.stat(path, follow_symlinks=False).st_ino == st.st_ino:
                    path.unlink()
                    removed.append(path)
                    logger.warning("removed %s: a temporary file left by a writer that is gone",
                                   path)
        finally:
            os.close(fd)
    return removed


def _lock(fd: int, blocking: bool) -> bool | None:
    """Take the exclusive lock on ``fd``: True when taken, False when another holder has it
    (non-blocking only), None when the filesystem offers no locks."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
    except BlockingIOError:
        return False
    except OSError:  # ENOLCK, EOPNOTSUPP: no locks on this filesystem
        return None
    return True


def atomic_write_bytes(target: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``target`` atomically."""
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)
    return Path(target)


def atomic_write_text(target: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``target`` atomically."""
    return atomic_write_bytes(target, text.encode("utf-8"))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
