"""``cryptoflow serve``: every deployment of ``prefect.yaml`` with its schedule, in one process."""

from __future__ import annotations

from deployments.definitions import runner_deployments


def serve_all(*, limit: int | None = None) -> None:
    """Register and serve all deployments until interrupted (no work pool or worker needed)."""
    from prefect import serve

    serve(*runner_deployments(), limit=limit)
