"""The ``server-time`` task: the exchange's "now", which decides which candles have closed."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.poloniex.client import PoloniexClient
from tasks.poloniex.retry import retry_unless_permanent


@task(
    name="server-time",
    retries=2,
    retry_delay_seconds=[1.0, 4.0],
    retry_jitter_factor=0.5,
    retry_condition_fn=retry_unless_permanent,
    cache_policy=NO_CACHE,
    persist_result=False,
)
def server_time(client: PoloniexClient) -> int:
    """The exchange's "now" in epoch ms (never the local clock)."""
    return client.server_time_ms()
