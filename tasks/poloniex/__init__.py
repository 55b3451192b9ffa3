"""Poloniex v3 public market data: candles and server time, validated, rate-limited, retried.

``GET {base}/markets/{symbol}/candles?interval=&startTime=&endTime=&limit=`` returns at most 500
rows of 14 fields ``[low, high, open, close, amount (quote), quantity (base), buyTakerAmount,
buyTakerQuantity, tradeCount, ts, weightedAverage, interval, startTime, closeTime]``; prices and
volumes are strings. The API anchors its answer to ``endTime`` (with only ``startTime`` it
returns the *latest* candles), so every request here sends both.

Settings: ``storage.settings.PoloniexSettings``. Modules: ``errors`` (the typed failures),
``ratelimit`` (the token bucket), ``client`` (:class:`PoloniexClient`), ``pages`` (page
validation and parsing), ``planning`` (page windows, month batches, resume start) and ``fetch``
(the ``fetch-pages`` task and its retry rule).
"""
