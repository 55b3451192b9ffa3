"""The newest window of a market, built exactly as training built its windows: the same
features (:func:`tasks.windows.cut.feature_matrix`), the same scaler parameters (from the
champion's window file), per-window division under the ``window`` scaler."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from storage.errors import BadInputError
from storage.schema import Interval, from_epoch_ms
from tasks.scaling import Scaler
from tasks.windows.cut import feature_matrix
from tasks.windows.spec import Feature, Protocol


@dataclass(frozen=True)
class NewestWindow:
    """One window ready for a model: ``x`` (1, N, F) scaled as training scaled; ``input_times``
    (N,) int64 epoch ms; ``anchor`` the last input close (price) when the scaler divides per
    window, else None; ``last_close`` the last input close in price units."""

    x: np.ndarray
    input_times: np.ndarray
    anchor: float | None
    last_close: float

    @property
    def issued_at_ms(self) -> int:
        """Open time (epoch ms) of the last input candle: the forecast's issue time."""
        return int(self.input_times[-1])

    @property
    def anchors(self) -> np.ndarray | None:
        """``anchor`` as the (1,) array :meth:`Scaler.target_to_price` takes, or None."""
        return None if self.anchor is None else np.array([self.anchor], dtype=np.float64)


def candles_needed(past: int, features: tuple[Feature, ...]) -> int:
    """Candles the newest window is made of: ``past``, plus one before for a log return."""
    return past + (1 if Feature.LOG_RETURN in features else 0)


def newest_window(
    candles: pd.DataFrame,
    interval: str | Interval,
    past: int,
    features: tuple[Feature, ...],
    scaler: Scaler,
    protocol: Protocol = Protocol.HONEST,
) -> NewestWindow:
    """The window of the last ``past`` candles of typed ``candles`` (oldest first).

    ``BadInputError`` when there are too few candles or a candle is missing inside the window
    (honest training drops windows that span a gap; and K steps after a hole would not be the
    K candles the forecast names), whatever the spec's ``drop_gaps``.
    """
    iv = Interval.parse(interval)
    need = candles_needed(past, features)
    if len(candles) < need:
        raise BadInputError(
            f"the newest window needs {need} candles, the store has {len(candles)}; "
            "run `cryptoflow ingest` first"
        )
    tail = candles.iloc[-need:]
    values, times = feature_matrix(tail, features, iv.ms)
    steps = np.diff(times)
    if np.any(steps != iv.ms):
        at = int(np.flatnonzero(steps != iv.ms)[0])
        missing = int(steps[at] // iv.ms) - 1
        raise BadInputError(
            f"the newest window has a gap: {missing} candle(s) missing after "
            f"{from_epoch_ms(int(times[at])).isoformat()}; run `cryptoflow ingest` to fill it, "
            "or wait until a full window of candles follows it"
        )
    if not np.isfinite(values).all():
        raise BadInputError("the newest window has a missing or non-finite value")
    if values.shape[1] != scaler.n_features:
        raise BadInputError(
            f"the window has {values.shape[1]} features, the champion's scaler {scaler.n_features}"
        )
    closes = tail["close"].to_numpy(dtype=np.float64)
    if scaler.per_window:
        originals = values[None]
        anchors = scaler.window_anchors(originals)
        x = scaler.scale_windows(originals, anchors)
        anchor: float | None = float(anchors[0])
    else:
        x = scaler.transform(values)[None]
        if protocol is Protocol.HONEST:  # as plan_windows stores honest windows
            x = x.astype(np.float32)
        anchor = None
    return NewestWindow(x=x, input_times=times, anchor=anchor, last_close=float(closes[-1]))
