"""The project's settings: one pydantic-settings model, ``CRYPTOFLOW_*`` environment variables.

Every part asks :func:`settings` instead of reading ``os.environ``; ``cryptoflow settings``
prints the effective values and where each came from (:func:`describe`).
"""

from __future__ import annotations

import os
import re
import socket
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from storage.champions import GateRule
from storage.errors import BadInputError

ENV_PREFIX = "CRYPTOFLOW_"
#: Poloniex client defaults (the client's arguments and the fetch task's retries use them too).
DEFAULT_BASE_URL = "https://api.poloniex.com"
DEFAULT_MAX_REQUESTS_PER_SECOND = 20.0
DEFAULT_TIMEOUT_S = 10.0
DEFAULT_MAX_IN_FLIGHT = 4
DEFAULT_RETRIES = 4
DEFAULT_RETRY_DELAYS_S = (1.0, 4.0, 15.0, 60.0)
DEFAULT_MAX_RETRY_AFTER_S = 60.0
DEFAULT_DATA_DIR = "./data"
#: A saved Prefect block named in a setting: ``<block-type-slug>/<block-name>``.
BLOCK_SLUG = r"[a-z0-9][a-z0-9-]*/[A-Za-z0-9][A-Za-z0-9_-]*"
#: The champion gate's defaults: beat persistence and the current champion, by any margin.
DEFAULT_CHAMPION_GATE = GateRule.BEAT_BOTH
DEFAULT_CHAMPION_MARGIN = 0.0
#: Live scoring: the rolling window (issues; a day of 5-minute candles) and the skill below
#: which the champion counts as degraded (1 - MSE / MSE(persistence) over that window).
DEFAULT_LIVE_WINDOW = 288
DEFAULT_DEGRADED_SKILL = -0.05


class MirrorPull(StrEnum):
    """What a stage pulls from a remote data directory before and while it runs."""

    TOUCHED = "touched"  # only the folders and files the stage reads (its series, window, run)
    ALL = "all"  # every object of the data directory first (slow with a long history)


class PoloniexSettings(BaseSettings):
    """Poloniex client settings, from ``CRYPTOFLOW_*`` environment variables or arguments."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    poloniex_url: str = Field(
        DEFAULT_BASE_URL, description="Base URL of the Poloniex v3 API (or of `cryptoflow replay`)."
    )
    max_requests_per_second: float = Field(
        DEFAULT_MAX_REQUESTS_PER_SECOND,
        ge=0,
        description="Client-side rate limit (token bucket); 0 turns it off. "
        "The API allows about 200/s for public market data.",
    )
    timeout: float = Field(
        DEFAULT_TIMEOUT_S, gt=0, description="Seconds before one HTTP request times out."
    )
    max_in_flight: int = Field(
        DEFAULT_MAX_IN_FLIGHT,
        ge=1,
        le=16,
        description="Page requests of one series in flight at once (still rate-limited).",
    )
    retries: int = Field(DEFAULT_RETRIES, ge=0, description="Retries of one failed page fetch.")
    retry_delays: list[float] = Field(
        default_factory=lambda: list(DEFAULT_RETRY_DELAYS_S),
        description="Seconds to wait before each retry (last one repeats), jittered by 50%.",
    )
    max_retry_after: float = Field(
        DEFAULT_MAX_RETRY_AFTER_S,
        ge=0,
        description="Longest server Retry-After honoured, in seconds; a longer one fails the "
        "try as retryable (the next waits retry_delays), so no wait is unbounded.",
    )


class CryptoflowSettings(BaseSettings):
    """Where the stores live and where work runs; the Poloniex client's settings nested."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    data_dir: str = Field(
        DEFAULT_DATA_DIR,
        description="Data directory holding the candle, window, run and report stores; "
        "a local path or an fsspec URL (s3://bucket/prefix).",
    )
    cache_dir: Path = Field(
        default_factory=lambda: Path.home() / ".cache" / "cryptoflow",
        description="Local cache that mirrors a remote data directory.",
    )
    mirror_pull: MirrorPull = Field(
        MirrorPull.TOUCHED,
        description="What a stage pulls from a remote data directory: touched (only what it "
        "reads: its series, window file and run, so a run's cost does not grow with the "
        "store's history) or all (every object first).",
    )
    host_name: str = Field(
        default_factory=socket.gethostname,
        description="This host's name as other hosts see it, e.g. in the message of an ingest "
        "that finds its series held by another writer (letters, digits, . _ -).",
    )
    ingest_writer_limit: bool = Field(
        True,
        description="One writer per series across hosts: every ingest takes its series' "
        "Prefect global concurrency limit (cryptoflow-ingest-<exchange>-<symbol>-<interval>, "
        "one slot) on the shared Prefect server; off: the local file lock only.",
    )
    ingest_writer_wait: float = Field(
        60.0,
        ge=0,
        le=3600,
        description="Seconds an ingest waits for its series' writer slot held by another "
        "ingest (any host) before it fails, naming the holder.",
    )
    ingest_writer_lease: float = Field(
        300.0,
        ge=60,
        le=86400,
        description="Seconds of the writer slot's lease (renewed while the ingest runs): how "
        "long a series stays held after its writer died.",
    )
    result_storage: str = Field(
        "",
        description="Where Prefect keeps the results and cache records of cached tasks "
        "(training), so every host with the same data directory and Prefect server gets the "
        "same Cached hits: empty: <data dir>/.prefect-results (on S3 too); an absolute folder "
        "or fsspec URL; or a saved storage block as <block-type>/<block-name> "
        "(e.g. s3-bucket/cryptoflow-results).",
    )
    dask_address: str | None = Field(
        None,
        description="Dask scheduler (tcp://host:8786) used with task_runner=dask; "
        "empty: a LocalCluster sized to this machine.",
    )
    worker_threads: int | None = Field(
        None,
        ge=1,
        description="CPU threads of one Dask training worker (default: the machine's cores "
        "divided among its workers).",
    )
    champion_gate: GateRule = Field(
        DEFAULT_CHAMPION_GATE,
        description="What a run's winner must beat on the same evaluation windows to become "
        "its market's champion: beat-both (persistence and the current champion), "
        "beat-persistence, or off (every winner is promoted).",
    )
    champion_margin: float = Field(
        DEFAULT_CHAMPION_MARGIN,
        ge=0,
        lt=1,
        description="How much better the winner must be: its test MSE below (1 - margin) x "
        "each opponent's MSE on the same windows; 0: any improvement.",
    )
    live_window: int = Field(
        DEFAULT_LIVE_WINDOW,
        ge=1,
        le=1_000_000,
        description="Live scoring: the rolling window, in forecast issues of the current "
        "champion, over which live MSE/MAE/skill vs persistence are measured and degraded "
        "skill is judged (288 = a day of 5-minute candles).",
    )
    degraded_skill: float = Field(
        DEFAULT_DEGRADED_SKILL,
        ge=-1000,
        lt=1,
        allow_inf_nan=False,
        description="Live skill (1 - MSE/MSE(persistence) over the last live_window issues) "
        "below which the champion is degraded: event cryptoflow.forecast.degraded, once per "
        "champion, once at least live_window issues are scored.",
    )
    poloniex: PoloniexSettings = Field(
        default_factory=PoloniexSettings, description="The Poloniex client (CRYPTOFLOW_* too)."
    )

    @field_validator("result_storage")
    @classmethod
    def _result_storage_form(cls, value: str) -> str:
        text = value.strip()
        if not text or text.startswith("/") or "://" in text or re.fullmatch(BLOCK_SLUG, text):
            return text
        raise ValueError(
            "give an absolute folder, an fsspec URL (s3://bucket/results) or a storage block "
            f"as <block-type>/<block-name> (got {value!r})"
        )

    @field_validator("host_name")
    @classmethod
    def _plain_host_name(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}", value):
            raise ValueError(
                "a host name is 1-128 letters, digits, '.', '_' or '-', starting with a letter "
                f"or digit (got {value!r})"
            )
        return value


def settings() -> CryptoflowSettings:
    """The effective settings now (the environment is read on every call)."""
    try:
        return CryptoflowSettings()
    except ValidationError as exc:
        problems = "; ".join(
            f"{ENV_PREFIX}{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}"
            for e in exc.errors()
        )
        raise BadInputError(f"invalid settings: {problems}") from None


def env_name(field: str) -> str:
    """The environment variable of a settings field (``data_dir`` -> ``CRYPTOFLOW_DATA_DIR``)."""
    return f"{ENV_PREFIX}{field.upper()}"


def describe() -> list[dict[str, Any]]:
    """Every setting: name, effective value, source (``env NAME`` or ``default``), description."""
    current = settings()
    rows: list[dict[str, Any]] = []
    for model, prefix in ((current, ""), (current.poloniex, "poloniex.")):
        for name, field in type(model).model_fields.items():
            if name == "poloniex":
                continue
            env = env_name(name)
            rows.append({
                "name": prefix + name,
                "value": getattr(model, name),
                "source": f"env {env}" if env in os.environ else "default",
                "env": env,
                "description": field.description or "",
            })
    return rows
