"""Windowing: the tutorial's PastSampler bit for bit (seed), the honest protocol, gaps, the HDF5
window store and its readers, on the real recorded candles."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from sklearn.preprocessing import MinMaxScaler, StandardScaler

from storage.errors import BadInputError, CorruptStoreError
from storage.recorded import legacy_poloniex_candles, load_recorded
from storage.schema import to_ms
from storage.windows.format import WindowArrays
from storage.windows.store import WindowStore
from storage.windows.writer import write_window_file
from tasks.scaling import Scaler
from tasks.windows.cut import make_windows, seed_window_starts
from tasks.windows.dataset import write_windows
from tasks.windows.plan import plan_windows
from tasks.windows.reader import open_dataset
from tasks.windows.spec import WindowSpec
from tests.support.paths import shared_file
from tests.support.realdata import BITFINEX_5M, POLONIEX_5M, POLONIEX_30M, poloniex_raw
from tests.support.tutorial import PastSampler, tutorial_h5

TUTORIAL_NAMES = (
    "inputs",
    "outputs",
    "input_times",
    "output_times",
    "original_datas",
    "original_inputs",
    "original_outputs",
)


# --- real data as typed candles -----------------------------------------------------------------
def read_all(path: Path) -> dict[str, np.ndarray]:
    with h5py.File(path, "r") as f:
        return {name: f[name][...] for name in TUTORIAL_NAMES}


def assert_identical(ours: dict[str, np.ndarray], theirs: dict[str, np.ndarray]) -> None:
    for name in TUTORIAL_NAMES:
        a, b = ours[name], theirs[name]
        assert a.dtype == b.dtype, (name, a.dtype, b.dtype)
        assert a.shape == b.shape, (name, a.shape, b.shape)
        assert a.tobytes() == b.tobytes(), name


def seed_vs_tutorial(raw, interval, past, future, sliding, tmp_path) -> Path:
    candles = legacy_poloniex_candles(raw, interval)
    spec = WindowSpec(protocol="seed", past=past, future=future, stride=1 if sliding else None)
    ours = write_windows(candles, "BTC_USDT", "MINUTE_5", spec, tmp_path / "windows")
    theirs = tmp_path / "tutorial.h5"
    tutorial_h5(
        raw.rename(columns={"close": "Close", "date": "Timestamp"}), theirs, past, future, sliding
    )
    assert_identical(read_all(Path(ours["path"])), read_all(theirs))
    return Path(ours["path"])


# --- seed: the tutorial bit for bit ---------------------------------------------------------------
@pytest.mark.parametrize("sliding", [False, True])
def test_seed_matches_tutorial_on_poloniex_5m(tmp_path, sliding):
    raw = poloniex_raw(POLONIEX_5M)
    path = seed_vs_tutorial(raw, "MINUTE_5", 256, 16, sliding, tmp_path)
    ds = open_dataset(path)
    n = ds.n_windows
    assert n == (len(raw) - 272 + 1 if sliding else len(raw) // 272)
    # The tutorial trained on the first int(0.8 n) windows and validated on the rest.
    assert ds.split_size("train") == int(0.8 * n)
    assert ds.split_size("validation") == n - int(0.8 * n)
    assert ds.split_size("test") == 0


@pytest.mark.parametrize(("past", "future", "sliding"), [(256, 16, False), (24, 8, True)])
def test_seed_matches_tutorial_on_poloniex_30m(tmp_path, past, future, sliding):
    seed_vs_tutorial(poloniex_raw(POLONIEX_30M), "MINUTE_30", past, future, sliding, tmp_path)


@pytest.mark.parametrize("offset", [0, 1, 2, -1])
@pytest.mark.parametrize("multiple", [1, 2, 5])
@pytest.mark.parametrize("sliding", [False, True])
def test_seed_matches_tutorial_around_multiples_of_window(tmp_path, offset, multiple, sliding):
    past, future = 7, 3
    length = multiple * (past + future) + offset
    raw = poloniex_raw(POLONIEX_5M).iloc[1000 : 1000 + length].reset_index(drop=True)
    if length < past + future:  # not even one window: a clear error, nothing written
        with pytest.raises(ValueError, match="past\\+future"):
            seed_vs_tutorial(raw, "MINUTE_5", past, future, sliding, tmp_path)
        assert not (tmp_path / "windows").exists()
        return
    seed_vs_tutorial(raw, "MINUTE_5", past, future, sliding, tmp_path)


def test_seed_edge_rule_counts():
    for n in range(10, 60):
        ours = seed_window_starts(n, 7, 3, sliding=False)
        theirs = PastSampler(7, 3, sliding_window=False).transform(np.arange(n)[:, None, None])[0]
        assert np.array_equal(ours, theirs[:, 0, 0])


# --- make_windows --------------------------------------------------------------------------------
def test_make_windows_is_zero_copy_and_matches_sliding_pastsampler():
    values = np.random.default_rng(0).normal(size=(50, 3))
    x, y = make_windows(values, 6, 2, stride=1)
    assert np.shares_memory(x, values) and np.shares_memory(y, values)
    b, t = PastSampler(6, 2).transform(values[:, None, :])
    assert np.array_equal(x, b) and np.array_equal(y, t)
    xs, ys = make_windows(values, 6, 2, stride=5)
    assert np.array_equal(xs, b[::5]) and np.array_equal(ys, t[::5])
    assert xs.shape == (9, 6, 3)


# --- honest protocol -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def honest_file(tmp_path_factory) -> Path:
    spec = WindowSpec(past=32, future=8, features=("close", "high", "log_return"))
    out = write_windows(
        load_recorded(shared_file(POLONIEX_5M)),
        "BTC_USDT",
        "MINUTE_5",
        spec,
        tmp_path_factory.mktemp("honest") / "windows",
    )
    return Path(out["path"])


def test_honest_scaler_fit_on_training_rows_only(honest_file):
    ds = open_dataset(honest_file)
    x_orig, y_orig = ds.split_originals("train")
    # Every training row, gathered from the training windows themselves (stride 1, no gaps).
    rows = np.concatenate([x_orig.reshape(-1, 3), y_orig.reshape(-1, 3)])
    reference = MinMaxScaler().fit(rows)
    assert ds.scaler.params["data_min"] == list(reference.data_min_)
    assert ds.scaler.params["data_max"] == list(reference.data_max_)
    # The whole series reaches beyond the training rows: fitting on everything would differ.
    everything = ds.h5["original_datas"][...]
    assert list(np.nanmax(everything, axis=0)) != ds.scaler.params["data_max"]
    # And the stored windows are exactly those rows scaled, as float32.
    x, _ = ds.split_arrays("validation")
    xo, _ = ds.split_originals("validation")
    assert x.dtype == np.float32
    np.testing.assert_array_equal(x, ds.scaler.transform(xo).astype(np.float32))
    np.testing.assert_allclose(ds.scaler.inverse_transform(x), xo, rtol=1e-5, atol=1e-6)


def test_honest_splits_are_chronological_and_embargoed(honest_file):
    ds = open_dataset(honest_file)
    spans = {}
    for split in ("train", "validation", "test"):
        ti, to = ds.split_times(split)
        assert ti.shape[0] > 0
        spans[split] = (ti.min(), to.max())
    # No window of a later split overlaps the time span of any earlier one.
    assert spans["train"][1] < spans["validation"][0]
    assert spans["validation"][1] < spans["test"][0]
    counts = ds.attrs["counts"]
    n_rows = ds.attrs["n_rows"]
    m = 40
    # Stride 1, no gaps: each of the two boundaries costs exactly m - 1 straddling windows.
    assert counts["dropped_embargo"] == 2 * (m - 1) + (
        n_rows - ds.attrs["split_bounds"]["test"]["row_end"]
    )
    assert ds.n_windows + counts["dropped_embargo"] == n_rows - m + 1
    bounds = ds.attrs["split_bounds"]
    assert bounds["train"]["row_end"] == round(0.7 * n_rows)


def test_standard_scaler_on_training_rows(tmp_path):
    spec = WindowSpec(past=16, future=4, scaler="standard", features=("close", "volume_quote"))
    candles = load_recorded(shared_file(POLONIEX_5M))
    out = write_windows(candles, "BTC_USDT", "MINUTE_5", spec, tmp_path)
    ds = open_dataset(out["path"])
    x_orig, y_orig = ds.split_originals("train")
    rows = np.concatenate([x_orig[:, 0], x_orig[-1, 1:], y_orig[-1]])  # contiguous train rows
    ref = StandardScaler().fit(rows)
    np.testing.assert_allclose(ds.scaler.params["mean"], ref.mean_, rtol=1e-12)
    np.testing.assert_allclose(ds.scaler.params["std"], ref.scale_, rtol=1e-12)
    assert ds.target_feature == 0


def test_plain_h5py_reads_tutorial_names_and_attributes(honest_file):
    with h5py.File(honest_file, "r") as f:
        for name in (*TUTORIAL_NAMES, "split"):
            assert name in f, name
        n = f["inputs"].shape[0]
        assert f["inputs"].shape == (n, 32, 3) and f["outputs"].shape == (n, 8, 3)
        assert f["input_times"].shape == (n, 32) and f["input_times"].dtype == np.int64
        assert f["split"].shape == (n,) and f["split"].dtype == np.int8
        assert f["inputs"].chunks is not None and f["inputs"].compression == "gzip"
        for key in (
            "past",
            "future",
            "stride",
            "features",
            "protocol",
            "split_bounds",
            "scaler",
            "candle_fingerprint",
            "code_version",
            "symbol",
            "interval",
            "dataset_id",
            "target_feature",
        ):
            assert key in f.attrs, key
        assert json.loads(f.attrs["features"]) == ["close", "high", "log_return"]
        assert f.attrs["target_feature"] == 0 and f.attrs["protocol"] == "honest"
        assert f.attrs["dataset_id"] == honest_file.stem
        # outputs continue inputs in time, by exactly one candle
        assert np.all(f["output_times"][:, 0] - f["input_times"][:, -1] == 300_000)


def test_log_return_feature_matches_closes(honest_file):
    ds = open_dataset(honest_file)
    xo, _ = ds.split_originals("train")
    close, logret = xo[..., 0], xo[..., 2]
    np.testing.assert_allclose(logret[:, 1:], np.log(close[:, 1:] / close[:, :-1]), atol=1e-12)


def test_gaps_never_spanned_on_bitfinex_5m(tmp_path):
    candles = load_recorded(shared_file(BITFINEX_5M))
    spec = WindowSpec(past=24, future=8, layout="compact")
    out = write_windows(candles, "BTC_USD", "MINUTE_5", spec, tmp_path)
    ds = open_dataset(out["path"])
    m, step = 32, 300_000
    for split in ("train", "validation", "test"):
        ti, to = ds.split_times(split)
        times = np.concatenate([ti, to], axis=1)
        assert np.all(np.diff(times, axis=1) == step), split
    # Count independently: a window inside a split spans a gap iff its first and last candles
    # are not (m - 1) intervals apart.
    t = to_ms(candles["open_time"])
    bounds = ds.attrs["split_bounds"]
    expected = 0
    for split in ("train", "validation", "test"):
        lo, hi = bounds[split]["row_start"], bounds[split]["row_end"]
        span = t[lo + m - 1 : hi] - t[lo : hi - m + 1]
        expected += int(np.sum(span != (m - 1) * step))
        assert ds.split_size(split) == int(np.sum(span == (m - 1) * step))
    assert expected > 0
    assert ds.attrs["counts"]["dropped_gaps"] == expected == out["dropped_gaps"]
    assert ds.attrs["counts"]["n_gaps"] == int(np.sum(np.diff(t) != step))


def test_seed_ignores_gaps(tmp_path):
    candles = load_recorded(shared_file(BITFINEX_5M)).iloc[:20_000]
    plan = plan_windows(candles, "MINUTE_5", WindowSpec(protocol="seed", past=24, future=8))
    assert plan.arrays.starts.size == 20_000 // 32
    assert plan.counts["dropped_gaps"] == 0


# --- layouts, store, reader -----------------------------------------------------------------------
def test_compact_layout_yields_the_same_windows(tmp_path):
    candles = load_recorded(shared_file(POLONIEX_5M))
    full = write_windows(candles, "BTC_USDT", "MINUTE_5", WindowSpec(past=32, future=8), tmp_path)
    compact = write_windows(
        candles, "BTC_USDT", "MINUTE_5", WindowSpec(past=32, future=8, layout="compact"), tmp_path
    )
    assert full["path"] != compact["path"] and full["windows"] == compact["windows"]
    a, b = open_dataset(full["path"]), open_dataset(compact["path"])
    for split in ("train", "validation", "test"):
        for fa, fb in (
            (a.split_arrays, b.split_arrays),
            (a.split_times, b.split_times),
            (a.split_originals, b.split_originals),
        ):
            for x, y in zip(fa(split), fb(split), strict=True):
                assert x.dtype == y.dtype and np.array_equal(x, y)
    assert Path(compact["path"]).stat().st_size * 5 < Path(full["path"]).stat().st_size


def test_seed_compact_layout_matches_full(tmp_path):
    candles = load_recorded(shared_file(POLONIEX_5M))
    paths = [
        write_windows(
            candles,
            "BTC_USDT",
            "MINUTE_5",
            WindowSpec(protocol="seed", past=16, future=4, layout=lay),
            tmp_path,
        )["path"]
        for lay in ("full", "compact")
    ]
    a, b = open_dataset(paths[0]), open_dataset(paths[1])
    lo, hi = 0, a.n_windows
    for name in TUTORIAL_NAMES[:2] + TUTORIAL_NAMES[2:4] + TUTORIAL_NAMES[5:]:
        x, y = a.read(name, lo, hi), b.read(name, lo, hi)
        assert x.dtype == y.dtype and x.shape == y.shape and np.array_equal(x, y), name


def test_dataset_id_follows_candles_and_spec(tmp_path):
    candles = load_recorded(shared_file(POLONIEX_5M))
    spec = WindowSpec(past=16, future=4)
    a = write_windows(candles.iloc[:5000], "BTC_USDT", "MINUTE_5", spec, tmp_path)
    again = write_windows(candles.iloc[:5000], "BTC_USDT", "MINUTE_5", spec, tmp_path)
    more = write_windows(candles.iloc[:5001], "BTC_USDT", "MINUTE_5", spec, tmp_path)
    other = write_windows(
        candles.iloc[:5000], "BTC_USDT", "MINUTE_5", WindowSpec(past=16, future=5), tmp_path
    )
    assert a["created"] and not again["created"] and a["path"] == again["path"]
    assert len({a["dataset_id"], more["dataset_id"], other["dataset_id"]}) == 3


def test_failed_write_leaves_nothing(tmp_path):
    values = np.arange(100, dtype=np.float64)[:, None]
    arrays = WindowArrays(
        values,
        values.astype(np.float32),
        np.arange(100, dtype=np.int64),
        np.arange(50, dtype=np.int64),
        np.zeros(50, dtype=np.int8),
    )
    with pytest.raises(TypeError):
        write_window_file(tmp_path / "x.h5", arrays, 8, 2, {"bad": object()})
    assert list(tmp_path.iterdir()) == []


def test_scaler_json_round_trip_and_inverse():
    rows = np.random.default_rng(1).normal(100, 5, size=(200, 2))
    for kind in ("minmax", "standard"):
        s = Scaler.fit(rows, kind)
        back = Scaler.from_json(s.to_json())
        assert back == s
        np.testing.assert_allclose(back.inverse_transform(back.transform(rows)), rows, rtol=1e-12)
        col = back.transform(rows)[:, 1].reshape(20, 10)
        np.testing.assert_allclose(back.inverse_transform(col, feature=1).ravel(), rows[:, 1])
    with pytest.raises(ValueError, match="scaler"):
        Scaler.fit(rows, "robust")


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"past": 0}, "past"),
        ({"future": -3}, "future"),
        ({"features": ("close", "sentiment")}, "features"),
        ({"splits": (0.7, 0.2, 0.2)}, "splits"),
        ({"splits": (0.7, 0.3)}, "splits"),
        ({"protocol": "seed", "splits": (0.7, 0.2)}, "splits"),
        ({"stride": 0}, "stride"),
        ({"protocol": "seed", "stride": 5}, "stride"),
        ({"protocol": "magic"}, "protocol"),
    ],
)
def test_spec_rejects_bad_parameters(kwargs, param):
    with pytest.raises(BadInputError, match=param):
        WindowSpec(**kwargs)


def test_too_short_data_and_tiny_splits_rejected_before_writing(tmp_path):
    candles = load_recorded(shared_file(POLONIEX_5M)).iloc[:300]
    with pytest.raises(ValueError, match="past\\+future"):
        write_windows(candles, "BTC_USDT", "MINUTE_5", WindowSpec(past=256, future=64), tmp_path)
    with pytest.raises(ValueError, match="splits"):
        write_windows(candles, "BTC_USDT", "MINUTE_5", WindowSpec(past=40, future=8), tmp_path)
    assert not any(tmp_path.iterdir())


def test_keep_gaps_option_keeps_every_window_inside_the_splits(tmp_path):
    candles = load_recorded(shared_file(BITFINEX_5M)).iloc[:30_000]
    m = 32
    dropped = plan_windows(candles, "MINUTE_5", WindowSpec(past=24, future=8))
    kept = plan_windows(candles, "MINUTE_5", WindowSpec(past=24, future=8, drop_gaps=False))
    assert dropped.counts["dropped_gaps"] > 0 and kept.counts["dropped_gaps"] == 0
    assert kept.counts["n_windows"] == dropped.counts["n_windows"] + dropped.counts["dropped_gaps"]
    assert kept.counts["n_windows"] + kept.counts["dropped_embargo"] == len(candles) - m + 1
    with pytest.raises(ValueError, match="drop_gaps"):
        WindowSpec(protocol="seed", drop_gaps=True)


def test_log_return_never_taken_across_a_gap():
    candles = load_recorded(shared_file(BITFINEX_5M)).iloc[:30_000]
    spec = WindowSpec(past=8, future=2, features=("log_return",))
    plan = plan_windows(candles, "MINUTE_5", spec)
    t = plan.arrays.times
    # The candle before each window's first one is exactly one interval earlier (its return is
    # over 5 minutes), and no window holds a NaN.
    starts = plan.arrays.starts
    full_t = to_ms(candles["open_time"])
    prev = full_t[starts]  # times were shifted by the dropped first candle
    assert np.all(t[starts] - prev == 300_000)
    idx = starts[:, None] + np.arange(10)
    assert not np.isnan(plan.arrays.original[idx]).any()
    assert plan.target_feature == 0


def test_writing_memory_does_not_grow_with_the_number_of_windows(tmp_path):
    import tracemalloc

    candles = load_recorded(shared_file(BITFINEX_5M)).iloc[:100_000]
    spec = WindowSpec(past=64, future=8, drop_gaps=False)
    plan = plan_windows(candles, "MINUTE_5", spec)
    n = plan.arrays.starts.size
    logical = n * 72 * (4 + 8 + 8)  # scaled float32, times int64, originals float64
    tracemalloc.start()
    try:
        write_window_file(tmp_path / "w.h5", plan.arrays, 64, 8, {"past": 64, "future": 8})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < logical / 5, (peak, logical)
    with h5py.File(tmp_path / "w.h5", "r") as f:
        assert f["original_inputs"].shape == (n, 64, 1)
        last = plan.arrays.starts[-1]
        np.testing.assert_array_equal(
            f["original_inputs"][-1, :, 0], plan.arrays.original[last : last + 64, 0]
        )


def test_uncompressed_write_holds_the_same_windows(tmp_path):
    candles = load_recorded(shared_file(POLONIEX_5M))
    plan = plan_windows(candles, "MINUTE_5", WindowSpec(past=32, future=8))
    attrs = {"past": 32, "future": 8}
    write_window_file(tmp_path / "z.h5", plan.arrays, 32, 8, attrs)
    write_window_file(tmp_path / "u.h5", plan.arrays, 32, 8, attrs, compress=False, workers=1)
    with h5py.File(tmp_path / "z.h5", "r") as z, h5py.File(tmp_path / "u.h5", "r") as u:
        assert z["inputs"].compression == "gzip" and u["inputs"].compression is None
        for name in TUTORIAL_NAMES:
            assert np.array_equal(z[name][...], u[name][...]), name


def test_window_store_names_the_kind_of_failure(tmp_path, honest_file):
    store = WindowStore(tmp_path)
    with pytest.raises(BadInputError, match="no window file with id"):
        store.locate("ab12", None, None)
    with pytest.raises(BadInputError, match="window file not found"):
        store.locate(str(tmp_path / "gone.h5"), None, None)
    with pytest.raises(BadInputError, match="no window file for BTC_USDT MINUTE_5"):
        store.newest("BTC_USDT", "MINUTE_5")
    summary = store.summary(honest_file)
    assert summary["dataset_id"] == honest_file.stem and summary["protocol"] == "honest"
    assert (summary["past"], summary["future"]) == (32, 8)
    (tmp_path / "ab12.h5").write_bytes(b"not an HDF5 file")
    for call in (
        lambda: store.newest("BTC_USDT", "MINUTE_5"),
        lambda: store.summary(tmp_path / "ab12.h5"),
        lambda: open_dataset(tmp_path / "ab12.h5"),
    ):
        with pytest.raises(CorruptStoreError, match="ab12.h5: cannot be read") as err:
            call()
        assert err.value.rebuild.startswith("cryptoflow prepare --symbol")
    with h5py.File(tmp_path / "ab12.h5", "w") as f:
        f.attrs["symbol"], f.attrs["interval"] = "BTC_USDT", "MINUTE_5"
    with pytest.raises(CorruptStoreError, match="past") as err:
        open_dataset(tmp_path / "ab12.h5")
    assert err.value.rebuild == "cryptoflow prepare --symbol BTC_USDT --interval MINUTE_5"
    with pytest.raises(BadInputError, match="invalid dataset id"):
        store.path("../x")


def test_tidy_moves_unopenable_window_files_aside_and_keeps_intact_ones(tmp_path, honest_file):
    """Every `*.h5` that fails to open or lacks a dataset's rows goes to `.corrupt-<time>`
    (bytes kept); intact files of either layout stay where they are, untouched."""
    store = WindowStore(tmp_path)
    good = tmp_path / f"{honest_file.stem}.h5"
    good.write_bytes(honest_file.read_bytes())
    candles = load_recorded(shared_file(POLONIEX_5M)).iloc[:3000]
    compact = Path(write_windows(candles, "BTC_USDT", "MINUTE_5",
                                 WindowSpec(past=16, future=4, layout="compact"), tmp_path)["path"])
    damaged = {}
    for name, make in {
        "aaaa": lambda p: p.write_bytes(good.read_bytes()[:4096]),  # truncated
        "bbbb": lambda p: p.write_bytes(b"\0" * 8192),  # zeros
        "cccc": lambda p: p.write_bytes(b""),  # empty
    }.items():
        make(tmp_path / f"{name}.h5")
        damaged[name] = (tmp_path / f"{name}.h5").read_bytes()
    short = tmp_path / "dddd.h5"  # opens, but its outputs lost rows
    short.write_bytes(good.read_bytes())
    with h5py.File(short, "a") as f:
        outputs = f["outputs"][:-1]
        del f["outputs"]
        f["outputs"] = outputs
    damaged["dddd"] = short.read_bytes()
    in_use = tmp_path / "eeee.h5"  # intact, but open for writing in another process
    in_use.write_bytes(good.read_bytes())
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, h5py; f = h5py.File(sys.argv[1], 'a'); "
         "print('open', flush=True); sys.stdin.readline()", str(in_use)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        repairs = store.tidy()
    finally:
        holder.kill()
        holder.wait(timeout=60)
    assert [Path(u["path"]).name for u in repairs.unchecked] == [in_use.name]
    assert "lock" in repairs.unchecked[0]["problem"] and in_use.is_file()
    in_use.unlink()
    assert sorted(repairs.intact) == sorted([good.stem, compact.stem])
    assert sorted(Path(m["path"]).stem for m in repairs.moved) == sorted(damaged)
    for moved in repairs.moved:
        target = Path(moved["moved_to"])
        assert target.name.startswith(Path(moved["path"]).name + ".corrupt-")
        assert target.read_bytes() == damaged[Path(moved["path"]).stem]
    assert "outputs has" in next(m["problem"] for m in repairs.moved if "dddd" in m["path"])
    assert sorted(p.name for p in tmp_path.glob("*.h5")) == sorted([good.name, compact.name])
    assert store.tidy().moved == []  # nothing left to move; the .corrupt files are not windows
    with pytest.raises(BadInputError, match="no window file for ETH_USDT"):
        store.newest("ETH_USDT", "MINUTE_5")


def test_newest_names_the_market_in_the_rebuild_of_an_unreadable_file(tmp_path):
    (tmp_path / "ab12.h5").write_bytes(b"not an HDF5 file")
    with pytest.raises(CorruptStoreError, match="ab12.h5: cannot be read") as err:
        WindowStore(tmp_path).locate(None, "eth_usdt", "minute_5")
    assert err.value.rebuild == "cryptoflow prepare --symbol ETH_USDT --interval MINUTE_5"
