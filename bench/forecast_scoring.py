"""Benchmark: scoring one new forecast issue costs about the same with 90 days of 5-minute
forecasts already stored and scored as with 1 day (target O(new): <= 1.5x).

Builds two data directories from the recorded Bitfinex 5-minute candles (real prices), each
with a champion record, a candle store and a forecast store holding one issue per candle
(champion + persistence, K steps) over the last DAYS days, all scored once (untimed). Both
end on the same candle, the last of a month: the newest month file holds a full month in the
90-day case (the worst case for month-partitioned stores). Then, REPS times: one new candle and
one new issue are stored (untimed) and :func:`tasks.forecast.live.score_market` is timed (it
scores the issue that just matured); also timed, the chart the task draws at each scoring.
Run: ``.venv/bin/python bench/forecast_scoring.py [--reps 9] [--data DIR]``.

Measured (this CPU: 2 cores shared with other sessions, so runs vary; K=16, window 288,
median of 9, 2026-12-02, ``bench/forecast_scoring.py``), two runs of the committed code:
    score one new issue:  1 day 0.105 / 0.098 s, 90 days 0.105 / 0.120 s -> 1.01x / 1.23x
    chart of the task:    1 day 0.275 / 0.263 s, 90 days 0.187 / 0.277 s -> 0.68x / 1.05x
(target <= 1.5x). History on the way there, same bench: month files for scores and one row
group per forecast month gave 0.129 s vs 0.545 s (4.21x): each scoring rewrote and re-read
the whole month (~280 k rows); with day files and row groups, 1.23-1.58x remained, from the
chart's tail of 4 windows (the 1-day store has only 1); the chart now reads 2 windows and
plots the last one (each point's rolling skill over a full window).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from storage.candles import CandleStore  # noqa: E402
from storage.champions import ChampionRegistry  # noqa: E402
from storage.forecasts import ForecastStore, cast_forecasts  # noqa: E402
from storage.layout import DataLayout  # noqa: E402
from storage.recorded import load_recorded  # noqa: E402
from storage.schema import Interval  # noqa: E402

SYMBOL, IV = "BTC_USD", Interval.MINUTE_5
FILE = "bitfinex-BTCUSD-5m-2015--2017.csv.gz"
K, WINDOW, PER_DAY = 16, 288, 288
#: Both stores end on the last candle of this month (a full month file for 90 days).
END = pd.Timestamp("2017-11-30T23:55Z")


def forecast_rows(candles: pd.DataFrame, positions: np.ndarray) -> pd.DataFrame:
    """Champion (close x 1.001) and persistence rows of issues at ``positions`` of ``candles``."""
    opens = candles["open_time"].astype("int64").to_numpy()
    closes = candles["close"].to_numpy(dtype=np.float64)
    n = positions.size
    steps = np.tile(np.arange(1, K + 1), n)
    issued = np.repeat(opens[positions], K)
    frames = []
    for model, epoch, scale in (("cnn2_relu", 3, 1.001), ("persistence", None, 1.0)):
        frames.append(pd.DataFrame({
            "model": model,
            "issued_at": pd.to_datetime(issued, unit="ms", utc=True),
            "step": steps,
            "target_time": pd.to_datetime(issued + steps * IV.ms, unit="ms", utc=True),
            "predicted_close": np.repeat(closes[positions], K) * scale,
            "run_id": "bench-run",
            "epoch": pd.array([epoch] * (n * K), dtype="Int64"),
            "dataset_id": "0" * 20,
        }))
    return cast_forecasts(pd.concat(frames, ignore_index=True))


def build(root: Path, candles: pd.DataFrame, days: int, reps: int) -> int:
    """A data dir whose stores end at END with ``days`` of scored issues; returns the position
    (in ``candles``) of the last stored candle."""
    from tasks.forecast.live import score_market

    layout = DataLayout.at(root)
    end = int(np.searchsorted(candles["open_time"], END, side="right")) - 1
    first_issue = end - K - days * PER_DAY + 1
    CandleStore(layout.candles).append(SYMBOL, IV, candles.iloc[first_issue - 10: end + 1])
    ChampionRegistry(layout.reports).record({
        "run_id": "bench-run", "protocol": "honest", "symbol": SYMBOL, "interval": IV.value,
        "model": "cnn2_relu", "epoch": 3, "checkpoint": "x", "dataset_id": "0" * 20,
        "candle_fingerprint": "bench", "metrics": {}, "flow_run_id": None,
    })
    positions = np.arange(first_issue, end + 1)  # the last K issues have not matured yet
    ForecastStore(layout.forecasts).write(SYMBOL, IV, forecast_rows(candles, positions))
    score_market(root, SYMBOL, IV, window=WINDOW)  # the history, scored once (untimed)
    assert end + reps + 1 < len(candles)
    return end


def one_new_issue(root: Path, candles: pd.DataFrame, end: int, rep: int) -> tuple[float, float]:
    """Store candle ``end + rep + 1`` and its issue (untimed); time scoring, then the chart."""
    from tasks.forecast.live import score_market
    from tasks.forecast.publish import live_chart_png

    layout = DataLayout.at(root)
    pos = end + rep + 1
    CandleStore(layout.candles).append(SYMBOL, IV, candles.iloc[pos: pos + 1])
    ForecastStore(layout.forecasts).write(SYMBOL, IV, forecast_rows(candles, np.array([pos])))
    t0 = time.perf_counter()
    live = score_market(root, SYMBOL, IV, window=WINDOW)
    t1 = time.perf_counter()
    live_chart_png(live)
    t2 = time.perf_counter()
    assert live.scored_issues == 1, live.to_dict()
    return t1 - t0, t2 - t1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=9)
    ap.add_argument("--data", default=os.environ.get("CRYPTO_SHARED_DATA", "/work/shared/data"))
    args = ap.parse_args()
    path = Path(args.data) / FILE
    if not path.exists():
        raise SystemExit(f"missing {path}: set --data or CRYPTO_SHARED_DATA")
    candles = load_recorded(path, interval=IV).reset_index(drop=True)
    results: dict[int, tuple[float, float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-scoring-") as tmp:
        for days in (1, 90):
            root = Path(tmp) / f"d{days}"
            t0 = time.perf_counter()
            end = build(root, candles, days, args.reps)
            built = time.perf_counter() - t0
            score, chart = zip(*(one_new_issue(root, candles, end, r) for r in range(args.reps)),
                               strict=True)
            results[days] = (statistics.median(score), statistics.median(chart))
            n_files = len(list((root / "scores").rglob("*.parquet")))
            print(f"{days:>3} day(s): {days * PER_DAY} issues x 2 models x K={K} stored and "
                  f"scored (set-up {built:.1f} s, {n_files} score files); one new issue: "
                  f"score {results[days][0]:.4f} s, chart {results[days][1]:.4f} s "
                  f"(median of {args.reps})")
    (s1, c1), (s90, c90) = results[1], results[90]
    print(f"score one new issue: 90 days / 1 day = {s90 / s1:.2f}x (target <= 1.5x)")
    print(f"chart at each scoring: 90 days / 1 day = {c90 / c1:.2f}x")


if __name__ == "__main__":
    main()
