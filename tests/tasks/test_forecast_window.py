"""The newest window is the window training would have cut: real candles, a real window file,
the same scaled inputs (MinMax fit on training rows; the per-window scaler with log returns)."""

from __future__ import annotations

import numpy as np
import pytest

from storage.errors import BadInputError
from tasks.forecast.window import newest_window
from tasks.windows import open_dataset
from tasks.windows.spec import Protocol, parse_features
from tests.support.windows import real_candles, write_real_windows

PAST, FUTURE, ROWS = 32, 4, 1200


@pytest.mark.parametrize(
    ("scaler", "features"),
    [("minmax", ("close",)), ("window", ("close", "volume_quote", "log_return"))],
)
def test_newest_window_equals_the_files_last_window(tmp_path, scaler, features):
    path = write_real_windows(tmp_path / "w.h5", past=PAST, future=FUTURE, stride=1, rows=ROWS,
                              features=features, scaler=scaler)
    candles = real_candles(ROWS)
    with open_dataset(str(path)) as ds:
        x_test, _ = ds.split_arrays("test")
        in_times, _ = ds.split_times("test")
        anchors = ds.split_anchors("test")
        # the file's last window ends K candles before the end: its inputs end at row n-K-1
        window = newest_window(candles.iloc[: ROWS - FUTURE], "MINUTE_5", PAST,
                               parse_features(ds.features), ds.scaler, Protocol.HONEST)
    assert window.x.shape == (1, PAST, len(features))
    assert window.x.dtype == x_test.dtype
    np.testing.assert_array_equal(window.x[0], x_test[-1])
    np.testing.assert_array_equal(window.input_times, in_times[-1])
    assert window.last_close == candles["close"].iloc[ROWS - FUTURE - 1]
    if scaler == "window":
        assert window.anchor == anchors[-1] == window.last_close
    else:
        assert window.anchor is None and anchors is None


def test_a_gap_inside_the_newest_window_is_refused(tmp_path):
    path = write_real_windows(tmp_path / "w.h5", past=PAST, future=FUTURE, stride=1, rows=ROWS)
    candles = real_candles(ROWS)
    holed = candles.drop(index=candles.index[-10]).reset_index(drop=True)
    with open_dataset(str(path)) as ds, pytest.raises(BadInputError, match="gap: 1 candle"):
        newest_window(holed, "MINUTE_5", PAST, parse_features(ds.features), ds.scaler)
    with open_dataset(str(path)) as ds, pytest.raises(BadInputError, match="needs 32 candles"):
        newest_window(candles.iloc[:20], "MINUTE_5", PAST, parse_features(ds.features), ds.scaler)
