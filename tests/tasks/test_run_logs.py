"""The project's own loggers reach the flow run's logs in the Prefect API (what the UI shows)."""

from __future__ import annotations

import logging
import uuid

import pytest

pytestmark = pytest.mark.usefixtures("prefect_api")


def _run_logs(flow_run_id) -> list[str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    with get_client(sync_client=True) as client:
        logs = client.read_logs(
            log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id]))
        )
    return [log.message for log in logs]


def test_storage_warning_inside_a_flow_run_reaches_the_api():
    from prefect import flow
    from prefect.logging.handlers import APILogHandler
    from prefect.runtime import flow_run

    import flows  # noqa: F401 - importing the flows package routes the project loggers

    marker = f"candle conflict {uuid.uuid4().hex}"

    @flow
    def warns() -> str:
        logging.getLogger("storage.candles").warning(marker)
        return flow_run.id

    run_id = warns()
    APILogHandler().flush()
    assert any(marker in m for m in _run_logs(run_id))


def test_outside_a_run_the_project_logger_neither_warns_nor_fails(recwarn):
    import flows  # noqa: F401

    logging.getLogger("tasks.anything").warning("outside any run")
    assert not [w for w in recwarn if "flow run" in str(w.message)]
