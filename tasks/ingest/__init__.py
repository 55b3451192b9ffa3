"""The units of the ingest flow: request validation, server time, one series' fetch-and-commit,
its outcome, the published artifact and event, and the progress bar.

Modules: ``request`` (parameters and client settings), ``clock`` (the ``server-time`` task),
``series`` (the ``ingest-series`` task), ``outcome`` (``SeriesOutcome``, ``IngestError``,
messages), ``publish`` (artifact, event, log lines) and ``progress`` (the per-symbol bar).
"""
