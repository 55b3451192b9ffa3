"""Prefect flows: each module one stage's recipe (parameters, ordering, mapping, caching)."""

from tasks.run_logs import route_project_logs

route_project_logs()
