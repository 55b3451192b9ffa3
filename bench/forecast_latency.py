"""Benchmark: from "candles appended" to "forecast stored", per market, for 1 market and for 10,
against a plain ``model.predict`` on the same window (target: under 2 s per market of work
beyond Prefect's own task overhead).

Trains a 1-epoch ``cnn2_relu`` champion (honest windows, past 256, K 16) on the recorded
Poloniex 5-minute candles, then copies the candle store under 10 symbols and the run under 10
run ids, recording each as its market's champion. Timed, per market: appending one new candle,
:func:`tasks.forecast.issue_forecast` (registry, window file and scaler, checkpoint load,
window, predict) and :meth:`ForecastStore.write` (what the forecast flow's two tasks do, without
Prefect); the plain baseline is ``model.predict`` on the same (1, N, F) window with the model
already loaded, and ``load_checkpoint`` + predict. Markets run one after another (one process).
Run: ``.venv/bin/python bench/forecast_latency.py [--reps 3] [--data DIR]``.

Measured (this CPU: 2 cores shared with other sessions, median of 3, 2026-12-02; two runs,
the second's figures):
    plain model.predict (model loaded) 0.078 s; load_checkpoint + predict 0.158 s
     1 market:  append + issue + store 0.235 s per market (3.0x predict); score + chart 0.278 s
    10 markets: append + issue + store 0.204 s per market (2.6x predict); score + chart 0.236 s
(first run: 0.254 / 0.240 s per market). Well under the 2 s target; most of it is the
checkpoint load (no model cache across issues) and Keras' predict call overhead.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tasks.training.runtime import quiet_tensorflow_env  # noqa: E402

quiet_tensorflow_env()

FILE = "poloniex-USDT_BTC-5m-2017-07-14--2017-08-09.csv"
INTERVAL, MODEL, PAST, FUTURE, ROWS = "MINUTE_5", "cnn2_relu", 256, 16, 4000
SYMBOLS = ("BTC_USDT", "ETH_USDT", "LTC_USDT", "XRP_USDT", "DOGE_USDT", "SOL_USDT",
           "ADA_USDT", "DOT_USDT", "TRX_USDT", "BCH_USDT")


def set_up(root: Path, data: Path, markets: int) -> tuple:
    """A data dir with ``markets`` markets, each with the candles but the last ``reps`` ones
    and its own champion run; returns (candles, dataset path, checkpoint)."""
    from storage.candles import CandleStore
    from storage.champions import ChampionRegistry
    from storage.layout import DataLayout
    from storage.recorded import load_recorded
    from storage.runs import RunStore, new_run_id
    from tasks.training.loop import train_model
    from tasks.windows import WindowSpec, write_windows

    layout = DataLayout.at(root)
    candles = load_recorded(data / FILE).iloc[:ROWS].reset_index(drop=True)
    spec = WindowSpec(protocol="honest", past=PAST, future=FUTURE, stride=1)
    summary = write_windows(candles.iloc[:-20], SYMBOLS[0], INTERVAL, spec, layout.windows)
    runs = RunStore(layout.runs)
    base = new_run_id()
    train_model(Path(summary["path"]), MODEL, runs.model_dir(base, MODEL), epochs=1,
                batch_size=64, seed=0, threads=1)
    registry = ChampionRegistry(layout.reports)
    for i, symbol in enumerate(SYMBOLS[:markets]):
        run_id = base if i == 0 else f"{base}-m{i}"
        if i:
            shutil.copytree(runs.run_dir(base), runs.run_dir(run_id))
        runs.write_run(run_id, {"dataset_id": summary["dataset_id"],
                                "dataset_path": summary["path"], "protocol": "honest",
                                "models": [MODEL], "flow_run_id": None})
        (checkpoint,) = runs.checkpoints(run_id, MODEL).values()
        registry.record({
            "run_id": run_id, "protocol": "honest", "symbol": symbol, "interval": INTERVAL,
            "model": MODEL, "epoch": 1, "checkpoint": str(checkpoint),
            "dataset_id": summary["dataset_id"], "candle_fingerprint": "bench", "metrics": {},
            "flow_run_id": None,
        })
        CandleStore(layout.candles).append(symbol, INTERVAL, candles.iloc[:-20])
    (checkpoint,) = runs.checkpoints(base, MODEL).values()
    return candles, Path(summary["path"]), checkpoint


def forecast_markets(root: Path, candles, markets: int, rep: int) -> tuple[float, float]:
    """Seconds to append the candles up to ``-20 + rep`` (those a market lacks: one, in the
    steady state) and issue + store a forecast, for every market; then seconds to score them
    and draw their live charts (the flow's third task, without its artifacts)."""
    from storage.candles import CandleStore
    from storage.forecasts import ForecastStore
    from storage.layout import DataLayout
    from tasks.forecast import issue_forecast
    from tasks.forecast.live import score_market
    from tasks.forecast.publish import live_chart_png

    layout = DataLayout.at(root)
    end = len(candles) - 19 + rep
    t0 = time.perf_counter()
    for symbol in SYMBOLS[:markets]:
        CandleStore(layout.candles).append(symbol, INTERVAL, candles.iloc[end - 8: end])
        issue = issue_forecast(root, symbol, INTERVAL)
        assert ForecastStore(layout.forecasts).write(symbol, INTERVAL, issue.rows).added
    t1 = time.perf_counter()
    for symbol in SYMBOLS[:markets]:
        live_chart_png(score_market(root, symbol, INTERVAL))
    return t1 - t0, time.perf_counter() - t1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--data", type=Path,
                    default=Path(os.environ.get("CRYPTO_SHARED_DATA", "/work/shared/data")))
    args = ap.parse_args()
    if not (args.data / FILE).exists():
        raise SystemExit(f"missing {args.data / FILE}: set --data or CRYPTO_SHARED_DATA")
    from tasks.forecast import issue_forecast
    from tasks.selection import load_checkpoint

    per_market: dict[int, tuple[float, float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-latency-") as tmp:
        root = Path(tmp) / "data"
        candles, _, checkpoint = set_up(root, args.data, len(SYMBOLS))
        window = issue_forecast(root, SYMBOLS[0], INTERVAL).window.x
        model = load_checkpoint(checkpoint)
        model.predict(window, verbose=0)  # warm
        plain = statistics.median(
            _timed(lambda: model.predict(window, verbose=0)) for _ in range(args.reps))
        cold = statistics.median(
            _timed(lambda: load_checkpoint(checkpoint).predict(window, verbose=0))
            for _ in range(args.reps))
        rep = 0
        for markets in (1, len(SYMBOLS)):
            times = []
            for _ in range(args.reps):
                times.append(forecast_markets(root, candles, markets, rep))
                rep += 1
            per_market[markets] = (statistics.median(t for t, _ in times) / markets,
                                   statistics.median(t for _, t in times) / markets)
    print(f"plain model.predict on the window (model loaded): {plain:.3f} s; "
          f"load_checkpoint + predict: {cold:.3f} s")
    for markets, (secs, score) in per_market.items():
        print(f"{markets:>2} market(s): append + issue_forecast + store {secs:.3f} s per market "
              f"= {secs / plain:.1f}x plain predict, {secs / cold:.2f}x load + predict "
              f"(target < 2 s per market); then score + chart {score:.3f} s per market")


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


if __name__ == "__main__":
    main()
