"""A throw-away PostgreSQL cluster for tests, made with Debian's binaries in a temporary folder.

``postgres_cluster()`` runs ``initdb`` and ``pg_ctl`` from ``/usr/lib/postgresql/*/bin``
(Debian's ``postgresql`` package), listens on 127.0.0.1 only on a free port with its unix
socket inside the folder, creates one database with ``pg_trgm`` (Prefect needs it), and stops
and deletes everything at the end. ``initdb`` refuses to run as root, so as root the server
runs as the ``postgres`` system user (created when missing). Without the binaries the calling
test is skipped with the reason.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.servers import free_port

PG_BIN_GLOB = "/usr/lib/postgresql/*/bin"
SUPERUSER = "postgres"
INSTALL_HINT = "apt-get install -y postgresql"


@dataclass(frozen=True)
class PgCluster:
    """Where a running test cluster answers."""

    bin_dir: Path
    host: str
    port: int
    user: str
    database: str

    @property
    def asyncpg_url(self) -> str:
        """SQLAlchemy URL for Prefect (``PREFECT_SERVER_DATABASE_CONNECTION_URL``)."""
        return f"postgresql+asyncpg://{self.user}@{self.host}:{self.port}/{self.database}"

    @property
    def dsn(self) -> str:
        """libpq / asyncpg DSN."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.database}"

    def psql(self, sql: str) -> str:
        """Run one SQL statement with ``psql``; unaligned, tuples only, ``|`` separated."""
        out = subprocess.run(
            [str(self.bin_dir / "psql"), "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1",
             "-h", self.host, "-p", str(self.port), "-U", self.user, "-d", self.database,
             "-c", sql],
            capture_output=True, text=True, timeout=60, check=False,
        )
        if out.returncode != 0:
            raise RuntimeError(f"psql failed ({out.returncode}): {out.stderr.strip()}")
        return out.stdout.strip()


def find_pg_bin() -> Path | None:
    """The newest ``/usr/lib/postgresql/<version>/bin`` that has initdb and pg_ctl."""
    found = [
        Path(d) for d in glob.glob(PG_BIN_GLOB)
        if (Path(d) / "initdb").exists() and (Path(d) / "pg_ctl").exists()
    ]
    found.sort(key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
    return found[-1] if found else None


def _server_user() -> str | None:
    """The OS user the server runs as: ``postgres`` when we are root, else ourselves (None)."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SUPERUSER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
             SUPERUSER],
            check=True, capture_output=True, timeout=30,
        )
    return SUPERUSER


def _as_server_user(user: str | None, cmd: list[str]) -> list[str]:
    """Prefix ``cmd`` with ``runuser`` when the server must run as another user."""
    return ["runuser", "-u", user, "--", *cmd] if user else cmd


def _run(cmd: list[str], what: str) -> None:
    """Run a set-up command; fail with its output when it fails."""
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{what} failed ({out.returncode}): {out.stdout}\n{out.stderr}")


@contextlib.contextmanager
def postgres_cluster(database: str = "prefect") -> Iterator[PgCluster]:
    """A fresh PostgreSQL cluster on 127.0.0.1 with ``database`` and ``pg_trgm``; removed after."""
    bin_dir = find_pg_bin()
    if bin_dir is None:
        pytest.skip(f"PostgreSQL server binaries not found ({PG_BIN_GLOB}/initdb, pg_ctl); "
                    f"install them with `{INSTALL_HINT}`")
    user = _server_user()
    # Not under pytest's tmp_path: its parents are 0700 root, the server user cannot enter.
    root = Path(tempfile.mkdtemp(prefix="cryptoflow-pg-"))
    data, sock, log = root / "data", root / "sock", root / "server.log"
    sock.mkdir()
    if user:
        entry = pwd.getpwnam(user)
        for p in (root, sock):
            os.chown(p, entry.pw_uid, entry.pw_gid)
    port = free_port()
    started = False
    try:
        _run(_as_server_user(user, [
            str(bin_dir / "initdb"), "-D", str(data), "-U", SUPERUSER, "--auth=trust",
            "--encoding=UTF8", "--locale=C", "--no-sync",
        ]), "initdb")
        options = (f"-c listen_addresses=127.0.0.1 -p {port} -k {sock} "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
                   "-c max_connections=200")
        _run(_as_server_user(user, [
            str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options,
            "-w", "-t", "60", "start",
        ]), "pg_ctl start")
        started = True
        cluster = PgCluster(bin_dir, "127.0.0.1", port, SUPERUSER, database)
        _run([str(bin_dir / "createdb"), "-h", cluster.host, "-p", str(port), "-U", SUPERUSER,
              database], "createdb")
        cluster.psql("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        yield cluster
    finally:
        if started:
            subprocess.run(_as_server_user(user, [
                str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "-t", "60", "stop",
            ]), capture_output=True, timeout=90, check=False)
        shutil.rmtree(root, ignore_errors=True)
