"""cryptoflow: keep a candle store current; train, compare and report price forecasters."""

__version__ = "0.1.0"
