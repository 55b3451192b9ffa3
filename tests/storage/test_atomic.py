"""Atomic writes: all or nothing, and the permissions a plain write would give."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time

import pytest

import storage.atomic
from storage.atomic import atomic_path, atomic_write_text, remove_stale_temporaries
from tests.support.paths import REPO_ROOT

# A writer that stops inside atomic_path until told to finish (one line on stdin).
WRITER = """
import sys
from storage.atomic import atomic_path
with atomic_path(sys.argv[1], suffix=".h5") as tmp:
    tmp.write_bytes(b"partial")
    print(tmp, flush=True)
    sys.stdin.readline()
    tmp.write_bytes(b"complete")
"""


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path):
    target = tmp_path / "a" / "file.txt"
    atomic_write_text(target, "one")
    atomic_write_text(target, "two")
    assert target.read_text() == "two"
    assert [p.name for p in target.parent.iterdir()] == ["file.txt"]


def test_failure_keeps_old_content_and_removes_temp(tmp_path):
    target = tmp_path / "file.txt"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash mid-write")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["file.txt"]


def test_mode_follows_umask_like_open(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "r.html", "x")
        with open(tmp_path / "plain.html", "w") as fh:
            fh.write("x")
    finally:
        os.umask(old)
    mode = stat.S_IMODE((tmp_path / "r.html").stat().st_mode)
    assert mode == stat.S_IMODE((tmp_path / "plain.html").stat().st_mode) == 0o644


def start_writer(target) -> tuple[subprocess.Popen, str]:
    """A real writer process stopped inside ``atomic_path(target)``; (process, its temp path)."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(target)], env=env, cwd=REPO_ROOT,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()  # blocks until the temp file exists and is written
    assert line, f"writer ended early with {proc.wait(timeout=60)}"
    return proc, line


def test_stale_temporaries_removed_only_when_their_writer_is_gone(tmp_path):
    """A killed writer's temp goes; a live writer's stays (even idle for hours) and it finishes;
    an unlocked temp of unknown origin goes once idle past the bound, not before."""
    live, live_tmp = start_writer(tmp_path / "live.h5")
    dead, dead_tmp = start_writer(tmp_path / "dead.h5")
    try:
        os.kill(dead.pid, signal.SIGKILL)
        dead.wait(timeout=60)
        legacy_old = tmp_path / ".old.h5.abc123.h5.tmp"  # an older version's leftover
        legacy_new = tmp_path / ".new.h5.def456.h5.tmp"  # unlocked, but changed a moment ago
        legacy_old.write_bytes(b"x")
        legacy_new.write_bytes(b"x")
        hours_ago = time.time() - 3 * 3600
        for path in (live_tmp, dead_tmp, legacy_old):
            os.utime(path, (hours_ago, hours_ago))
        removed = remove_stale_temporaries(tmp_path)
        assert sorted(map(str, removed)) == sorted([dead_tmp, str(legacy_old)])
        assert os.path.exists(live_tmp) and legacy_new.exists()
        assert not os.path.exists(dead_tmp) and not (tmp_path / "dead.h5").exists()
        assert live.stdin is not None
        live.stdin.write("\n")
        live.stdin.close()
        assert live.wait(timeout=60) == 0
    finally:
        for proc in (live, dead):
            proc.kill()
            proc.wait(timeout=60)
    assert (tmp_path / "live.h5").read_bytes() == b"complete"
    assert not os.path.exists(live_tmp)


def test_writer_survives_a_cleaner_between_create_and_lock(tmp_path, monkeypatch):
    """A cleaner that removes the new temp before its writer locks it: the writer notices
    (the name no longer names its file) and starts over with a fresh temp."""
    real_lock = storage.atomic._lock
    calls = []

    def cleaner_first(fd, blocking):
        if blocking and not calls:
            for path in tmp_path.glob(".*.tmp"):
                path.unlink()
        calls.append(blocking)
        return real_lock(fd, blocking)

    monkeypatch.setattr(storage.atomic, "_lock", cleaner_first)
    atomic_write_text(tmp_path / "f.txt", "whole")
    assert calls == [True, True]
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]
    assert (tmp_path / "f.txt").read_text() == "whole"
