"""Block bootstrap, Diebold–Mariano and fold intervals against values worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from storage.errors import BadInputError
from tasks.significance import (
    diebold_mariano,
    interval_over_folds,
    moving_block_bootstrap_ci,
    skill_interval,
    versus_persistence,
)

# Six windows. d = a - b = [-3, -2, -1, -1, 0, 1], mean -1, deviations u = [-2, -1, 0, 0, 1, 2].
LOSS_A = np.array([1.0, 2.0, 2.0, 2.0, 2.0, 3.0])
LOSS_B = np.array([4.0, 4.0, 3.0, 3.0, 2.0, 2.0])


def test_diebold_mariano_by_hand_horizon_1():
    n = 6
    gamma0 = (4 + 1 + 0 + 0 + 1 + 4) / n  # sum u_t^2 / n = 10/6
    dm = -1 / math.sqrt(gamma0 / n)  # -6 / sqrt(10)
    hln = math.sqrt((n + 1 - 2 * 1 + 1 * 0 / n) / n)  # sqrt(5/6)
    expected = dm * hln  # = -sqrt(3)
    assert expected == pytest.approx(-math.sqrt(3))
    r = diebold_mariano(LOSS_A, LOSS_B, horizon=1)
    assert r.n == 6 and r.mean_diff == pytest.approx(-1.0)
    assert r.statistic == pytest.approx(expected)
    assert r.p_value == pytest.approx(2 * stats.t.sf(math.sqrt(3), df=5))


def test_diebold_mariano_by_hand_horizon_2():
    n = 6
    gamma0 = 10 / n
    # sum u_t u_{t-1} / n = ((-1)(-2) + 0(-1) + 0*0 + 1*0 + 2*1) / 6 = 4/6
    gamma1 = ((-1) * (-2) + 0 * (-1) + 0 * 0 + 1 * 0 + 2 * 1) / n
    long_run_variance = gamma0 + 2 * gamma1  # 3
    dm = -1 / math.sqrt(long_run_variance / n)  # -sqrt(2)
    hln = math.sqrt((n + 1 - 2 * 2 + 2 * 1 / n) / n)  # sqrt(5/9)
    expected = dm * hln  # = -sqrt(10) / 3
    assert expected == pytest.approx(-math.sqrt(10) / 3)
    r = diebold_mariano(LOSS_A, LOSS_B, horizon=2)
    assert r.statistic == pytest.approx(expected)
    assert r.p_value == pytest.approx(2 * stats.t.sf(math.sqrt(10) / 3, df=5))
    # b against a: the same test, the sign flipped
    flipped = diebold_mariano(LOSS_B, LOSS_A, horizon=2)
    assert flipped.statistic == pytest.approx(-expected)
    assert flipped.p_value == pytest.approx(r.p_value)


def test_diebold_mariano_falls_back_to_newey_west_where_the_rectangular_variance_is_negative():
    a = np.array([1.0, 3.0, 2.0, 5.0, 4.0, 2.0])
    b = np.array([2.0, 2.0, 4.0, 6.0, 3.0, 5.0])
    n, h = 6, 2
    # d = [-1, 1, -2, -1, 1, -3], mean -5/6, u = [-1, 11, -7, -1, 11, -13] / 6
    u = [-1 / 6, 11 / 6, -7 / 6, -1 / 6, 11 / 6, -13 / 6]
    gamma0 = sum(x * x for x in u) / n  # 462 / 216
    gamma1 = sum(u[t] * u[t - 1] for t in range(1, n)) / n  # -235 / 216
    assert (gamma0, gamma1) == pytest.approx((462 / 216, -235 / 216))
    assert gamma0 + 2 * gamma1 < 0  # rectangular: -8/216, not a variance
    bartlett = gamma0 + 2 * (1 - 1 / h) * gamma1  # 227 / 216
    hln = math.sqrt((n + 1 - 2 * h + h * (h - 1) / n) / n)
    expected = (-5 / 6) / math.sqrt(bartlett / n) * hln  # = -10 sqrt(5) / sqrt(227)
    assert expected == pytest.approx(-10 * math.sqrt(5) / math.sqrt(227))
    r = diebold_mariano(a, b, horizon=h)
    assert r.kernel == "bartlett" and r.statistic == pytest.approx(expected)
    assert r.p_value == pytest.approx(2 * stats.t.sf(abs(expected), df=n - 1))
    assert diebold_mariano(LOSS_A, LOSS_B, horizon=2).kernel == "rectangular"


def test_diebold_mariano_degenerate_inputs_are_nan_not_errors():
    # identical losses: the difference has no variance, so the test is undefined (NaN), and is
    # not reported as p = 1
    same = diebold_mariano(LOSS_A, LOSS_A.copy(), horizon=2)
    assert math.isnan(same.statistic) and math.isnan(same.p_value) and same.mean_diff == 0.0
    shifted = diebold_mariano(LOSS_A + 1.0, LOSS_A, horizon=1)  # constant difference
    assert math.isnan(shifted.statistic) and shifted.mean_diff == pytest.approx(1.0)
    one = diebold_mariano(np.array([1.0]), np.array([2.0]), horizon=1)
    assert math.isnan(one.statistic) and math.isnan(one.p_value) and one.n == 1
    empty = diebold_mariano(np.zeros(0), np.zeros(0), horizon=1)
    assert math.isnan(empty.statistic) and empty.n == 0
    assert math.isnan(diebold_mariano(LOSS_A, LOSS_B, horizon=6).statistic)  # h too long for n
    with pytest.raises(BadInputError, match="must match"):
        diebold_mariano(LOSS_A, LOSS_B[:5], horizon=1)
    with pytest.raises(BadInputError, match="horizon"):
        diebold_mariano(LOSS_A, LOSS_B, horizon=0)


def _ar1(n: int, phi: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = rng.normal(0.0, 1.0, n)
    x = np.empty(n)
    x[0] = noise[0] / math.sqrt(1 - phi**2)
    for t in range(1, n):
        x[t] = phi * x[t - 1] + noise[t]
    return x


def test_bootstrap_interval_of_iid_data_covers_the_mean_with_the_textbook_width():
    n, true_mean = 800, 5.0
    values = np.random.default_rng(3).normal(true_mean, 1.0, n)
    lo, hi = moving_block_bootstrap_ci(values, block=1, seed=0)
    assert lo < true_mean < hi
    assert lo < values.mean() < hi
    # iid: about mean ± 1.96 s / sqrt(n)
    assert hi - lo == pytest.approx(2 * 1.96 * values.std(ddof=1) / math.sqrt(n), rel=0.15)


def test_blocks_widen_the_interval_of_autocorrelated_data():
    values = _ar1(3000, 0.9, seed=4)  # true mean 0; long-run sd sqrt(19) ~ 4.4 x the iid one
    iid_lo, iid_hi = moving_block_bootstrap_ci(values, block=1, seed=0)
    lo, hi = moving_block_bootstrap_ci(values, block=60, seed=0)
    assert hi - lo > 2.5 * (iid_hi - iid_lo)
    assert lo < 0.0 < hi


def test_bootstrap_is_deterministic_with_a_seed_and_any_statistic_sees_the_same_resamples():
    values = _ar1(500, 0.5, seed=5)
    first = moving_block_bootstrap_ci(values, block=8, seed=11)
    assert moving_block_bootstrap_ci(values, block=8, seed=11) == first
    assert moving_block_bootstrap_ci(values, block=8, seed=12) != first
    # the fast path for the mean and a general statistic draw the same blocks
    general = moving_block_bootstrap_ci(values, lambda v: float(np.mean(v)), block=8, seed=11)
    assert general == pytest.approx(first)
    lo, hi = moving_block_bootstrap_ci(values, np.median, block=8, n_boot=300, seed=1)
    assert lo <= np.median(values) <= hi
    # a block as long as the series: every resample is the series itself
    assert moving_block_bootstrap_ci(values, block=10_000, n_boot=5) == pytest.approx(
        (values.mean(), values.mean())
    )


def test_bootstrap_rejects_bad_arguments():
    with pytest.raises(BadInputError, match="block"):
        moving_block_bootstrap_ci(np.ones(5), block=0)
    with pytest.raises(BadInputError, match=r"\(n,\)"):
        moving_block_bootstrap_ci(np.ones((5, 2)), block=1)
    with pytest.raises(BadInputError, match="level"):
        moving_block_bootstrap_ci(np.ones(5), block=1, level=1.0)
    assert all(math.isnan(v) for v in moving_block_bootstrap_ci(np.zeros(0), block=3))


def test_skill_interval_resamples_the_same_blocks_for_both_series():
    persistence = np.random.default_rng(6).gamma(2.0, 50.0, 400)
    # the model's loss is 80 % of persistence's in every window: skill 0.2 in every paired
    # resample (an unpaired bootstrap would spread it out)
    lo, hi = skill_interval(0.8 * persistence, persistence, block=4, seed=0)
    assert lo == pytest.approx(0.2) and hi == pytest.approx(0.2)
    model = persistence * np.random.default_rng(7).uniform(0.5, 1.3, 400)
    skill = 1 - model.mean() / persistence.mean()
    lo, hi = skill_interval(model, persistence, block=4, seed=0)
    assert lo < skill < hi and hi - lo > 0.01
    assert skill_interval(persistence, persistence, block=4) == pytest.approx((0.0, 0.0))
    assert all(math.isnan(v) for v in skill_interval(np.ones(4), np.zeros(4), block=2))
    with pytest.raises(BadInputError, match="must match"):
        skill_interval(model, persistence[:-1], block=4)


def test_interval_over_folds_by_hand():
    r = interval_over_folds(np.array([1.0, 2.0, 3.0, 4.0]), level=0.95)
    s = math.sqrt((1.5**2 + 0.5**2 + 0.5**2 + 1.5**2) / 3)  # sample sd, sqrt(5/3)
    t_975_3 = 3.182446  # Student t, 3 degrees of freedom, 97.5 % quantile (tables)
    half = t_975_3 * s / math.sqrt(4)
    assert (r.mean, r.n) == (2.5, 4)
    assert r.lo == pytest.approx(2.5 - half, rel=1e-6)
    assert r.hi == pytest.approx(2.5 + half, rel=1e-6)
    one = interval_over_folds(np.array([0.7]))
    assert one.mean == pytest.approx(0.7) and math.isnan(one.lo) and math.isnan(one.hi)
    assert math.isnan(interval_over_folds(np.zeros(0)).mean)


def test_versus_persistence_leaves_dm_out_for_the_reference():
    persistence = np.random.default_rng(8).gamma(2.0, 50.0, 60)
    model = persistence * np.random.default_rng(9).uniform(0.5, 1.1, 60)
    out = versus_persistence(model, persistence, 4)
    assert set(out) == {"skill_lo", "skill_hi", "dm_stat", "dm_p"}
    dm = diebold_mariano(model, persistence, 4)
    assert out["dm_stat"] == pytest.approx(dm.statistic) and out["dm_stat"] < 0
    assert out["dm_p"] == pytest.approx(dm.p_value)
    assert (out["skill_lo"], out["skill_hi"]) == pytest.approx(
        skill_interval(model, persistence, 4)
    )
    ref = versus_persistence(persistence, persistence, 4, is_persistence=True)
    assert ref["dm_stat"] is None and ref["dm_p"] is None
    assert ref["skill_lo"] == pytest.approx(0.0) and ref["skill_hi"] == pytest.approx(0.0)
