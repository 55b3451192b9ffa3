"""A Poloniex-v3-compatible HTTP server over recorded candles, for offline use and tests.

``from cryptoflow.replay import ReplayServer``; the parts: ``market`` (the candles endpoint's
semantics and the still-open candle's scale rule), ``faults`` (injected failures by candle-request
number), ``clock`` (the movable server clock, ``--now``), ``control`` (the request log and the
``/_replay/*`` endpoints), ``wire`` (HTTP plumbing) and ``server`` (the server itself). Recorded
files are read by ``storage.recorded.load_recorded``.
"""

from cryptoflow.replay.server import ReplayServer

__all__ = ["ReplayServer"]
