"""One writer per series across hosts: a Prefect global concurrency limit of one slot per series.

The local file lock (``CandleStore.lock``) keeps two writers on one host apart; on a data
directory shared between hosts (S3) it cannot. Every ingest of a series (the CLI, a deployment,
the pipeline's subflow: they all run :func:`~tasks.ingest.series.ingest_series`) first takes the
slot of the limit ``cryptoflow-ingest-<exchange>-<symbol>-<interval>`` (lower case) on the Prefect
server all hosts share, waiting at most ``ingest_writer_wait`` seconds. The holder records who
it is (host, process, flow run, since when) in the Prefect variable ``<limit>-holder``, so a
loser names it. The slot is a lease that the holder renews; a holder that dies frees it when
the lease runs out (``ingest_writer_lease`` seconds).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from storage.candles import StoreLockedError
from storage.schema import Interval, validate_symbol

LIMIT_PREFIX = "cryptoflow-ingest"
#: What a limit (and variable) name may hold: Prefect variable names are letters, digits,
#: dashes and underscores; limit names may not hold / % & > < either.
_NAME = re.compile(r"^[a-z0-9_-]{1,200}$")
logger = logging.getLogger(__name__)


class SeriesBusyError(StoreLockedError):
    """Another ingest, possibly on another host, holds the series' writer slot."""


def writer_limit_name(exchange: str, symbol: str, interval: str | Interval) -> str:
    """``cryptoflow-ingest-poloniex-btc_usdt-minute_5``; ``ValueError`` for a name the server
    would refuse."""
    iv = Interval.parse(interval).value
    name = f"{LIMIT_PREFIX}-{exchange}-{validate_symbol(symbol)}-{iv}".lower()
    if not _NAME.match(name):
        raise ValueError(f"cannot name a writer limit for {exchange!r} {symbol!r} {iv!r}: {name!r}")
    return name


def holder_variable(limit: str) -> str:
    """The Prefect variable where the holder of ``limit`` says who it is."""
    return f"{limit}-holder"


def describe_holder(holder: dict[str, Any] | None) -> str:
    """``host "a" (pid 12, flow run 'brave-fox' 1c2d…) since 2026-…``; or that none is known."""
    if not holder:
        return "a holder that recorded no name (an older version, or one that just left)"
    run = holder.get("flow_run_name") or holder.get("flow_run_id")
    text = f"host {holder.get('host')!r} (pid {holder.get('pid')}"
    if run:
        text += f", flow run {run!r}"
        if holder.get("flow_run_id") and holder.get("flow_run_name"):
            text += f" {holder['flow_run_id']}"
    return text + f") since {holder.get('since')}"


def _me() -> dict[str, Any]:
    from prefect.runtime import flow_run

    from storage.settings import settings

    run_id, run_name = flow_run.get_id(), None
    if run_id:
        with contextlib.suppress(Exception):
            run_name = flow_run.get_name()
    return {"host": settings().host_name, "pid": os.getpid(), "flow_run_id": run_id,
            "flow_run_name": run_name, "since": datetime.now(UTC).isoformat(timespec="seconds")}


def ensure_limit(name: str) -> None:
    """Create the one-slot limit ``name`` on the server unless it is there."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(name)
            return
        except ObjectNotFound:
            pass
        with contextlib.suppress(ObjectAlreadyExists):  # another host created it just now
            client.create_global_concurrency_limit(
                GlobalConcurrencyLimitCreate(name=name, limit=1, active=True)
            )


def read_holder(limit: str) -> dict[str, Any] | None:
    """What the current holder of ``limit`` recorded (None: nothing)."""
    from prefect.variables import Variable

    with contextlib.suppress(Exception):
        value = Variable.get(holder_variable(limit), default=None)
        return value if isinstance(value, dict) else None
    return None


@contextlib.contextmanager
def series_writer(exchange: str, symbol: str, interval: str | Interval) -> Iterator[str]:
    """Hold the series' writer slot on the Prefect server for the block; yields the limit name.

    Waits up to the ``ingest_writer_wait`` setting, then :class:`SeriesBusyError` naming the
    holder. A holder recorded on this host whose process is gone (``kill -9``) has its lease
    released at once instead of waited out. With ``ingest_writer_limit`` off, only the local
    file lock guards the series."""
    from prefect.variables import Variable

    from storage.settings import settings

    current = settings()
    name = writer_limit_name(exchange, symbol, interval)
    if not current.ingest_writer_limit:
        yield name
        return
    ensure_limit(name)
    _release_if_dead(name, current.host_name)
    lease_id = _acquire(name, symbol, interval, current.ingest_writer_wait,
                        current.ingest_writer_lease)
    renewer = _Renewer(lease_id, current.ingest_writer_lease)
    try:
        Variable.set(holder_variable(name), _me() | {"lease_id": str(lease_id)}, overwrite=True)
        renewer.start()
        yield name
    finally:
        renewer.stop()
        with contextlib.suppress(Exception):
            Variable.unset(holder_variable(name))
        _release(lease_id)


def _acquire(name: str, symbol: str, interval: str | Interval, wait_s: float,
             lease_s: float) -> Any:
    """The lease id of the one slot of ``name``, waiting up to ``wait_s`` seconds."""
    import httpx
    from prefect.client.orchestration import get_client

    deadline = time.monotonic() + wait_s
    with get_client(sync_client=True) as client:
        while True:
            try:
                response = client.increment_concurrency_slots_with_lease(
                    names=[name], slots=1, mode="concurrency", lease_duration=lease_s
                )
            except httpx.HTTPStatusError as exc:
                if exc.response.status_code != 423:  # 423 Locked: the slot is taken
                    raise
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                retry_after = float(exc.response.headers.get("Retry-After") or 1.0)
                time.sleep(max(0.05, min(retry_after, 1.0, left)))
                continue
            body = response.json()
            if not body.get("limits"):
                raise RuntimeError(f"the Prefect server has no concurrency limit {name!r}")
            return body["lease_id"]
    label = f"{validate_symbol(symbol)} {Interval.parse(interval).value}"
    raise SeriesBusyError(
        f"another ingest of {label} is writing it: {describe_holder(read_holder(name))} holds "
        f"the writer slot {name!r} on the Prefect server (waited {wait_s:g} s, setting "
        "ingest_writer_wait); wait for it to finish"
    )


def _release(lease_id: Any) -> None:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        client.release_concurrency_slots_with_lease(lease_id)


def _release_if_dead(name: str, host: str) -> None:
    """Release the lease of a holder recorded on this host whose process no longer runs."""
    holder = read_holder(name)
    if not holder or holder.get("host") != host or not holder.get("lease_id"):
        return
    pid = holder.get("pid")
    if not isinstance(pid, int) or pid == os.getpid() or _alive(pid):
        return
    logger.warning("releasing the writer slot %s of a dead ingest on this host: %s", name,
                   describe_holder(holder))
    with contextlib.suppress(Exception):
        _release(holder["lease_id"])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _Renewer:
    """Renews a lease every third of its duration in a daemon thread until stopped."""

    def __init__(self, lease_id: Any, lease_s: float) -> None:
        self.lease_id, self.lease_s = lease_id, lease_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="series-writer-lease",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def _run(self) -> None:
        from prefect.client.orchestration import get_client

        while not self._stop.wait(self.lease_s / 3):
            try:
                with get_client(sync_client=True) as client:
                    client.renew_concurrency_lease(self.lease_id, self.lease_s)
            except Exception as exc:  # the next try may work; the lease outlives two misses
                logger.error("could not renew the series writer lease %s: %s", self.lease_id,
                             exc)
