"""The Poloniex client settings (``CRYPTOFLOW_*`` environment variables), defaults in one place."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_BASE_URL = "https://api.poloniex.com"
DEFAULT_MAX_REQUESTS_PER_SECOND = 20.0
DEFAULT_TIMEOUT_S = 10.0
DEFAULT_MAX_IN_FLIGHT = 4
DEFAULT_RETRIES = 4
DEFAULT_RETRY_DELAYS_S = (1.0, 4.0, 15.0, 60.0)


class PoloniexSettings(BaseSettings):
    """Client settings, from ``CRYPTOFLOW_*`` environment variables or arguments."""

    model_config = SettingsConfigDict(env_prefix="CRYPTOFLOW_", extra="ignore")

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
