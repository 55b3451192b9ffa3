"""The units of work: pure functions, each with the thin Prefect ``@task`` that wraps it."""
