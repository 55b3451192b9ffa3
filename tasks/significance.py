"""Is a forecaster really better than persistence? Block-bootstrap intervals, the
Diebold–Mariano test and intervals across folds, on per-window losses (pure numpy and scipy).

Losses come in as ``(n,)`` arrays, one value per window in time order (``tasks.metrics.
window_mse``). Neighbouring windows overlap in time, so their errors are autocorrelated: the
bootstrap resamples blocks of consecutive windows (Künsch's moving block bootstrap) and the DM
test uses the long-run variance of the loss difference, not the plain variance.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
from scipy import stats

from storage.errors import BadInputError
from tasks.metrics import finite_or_none

#: Most block starts drawn at once (bootstrap replicates x blocks per replicate).
_STARTS_PER_CHUNK = 1 << 20
NAN = float("nan")


@dataclass(frozen=True)
class DMResult:
    """Diebold–Mariano test of equal expected loss of ``a`` and ``b``: ``statistic < 0`` means
    ``a`` has the smaller loss; ``mean_diff`` = mean(loss_a − loss_b). NaN statistic and
    p-value where the test is undefined (fewer than 2 windows, no variance in the difference).
    ``kernel``: the autocovariance weights of the long-run variance, ``rectangular`` (DM's) or
    ``bartlett`` (Newey–West, used where the rectangular estimate is not positive)."""

    statistic: float
    p_value: float
    n: int
    mean_diff: float
    kernel: str = "rectangular"


@dataclass(frozen=True)
class FoldInterval:
    """Mean of a metric over K walk-forward folds and its Student t interval (NaN if K < 2)."""

    mean: float
    lo: float
    hi: float
    n: int


def _series(values: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise BadInputError(f"{name} must be one value per window (n,), got shape {arr.shape}")
    return arr


def _pair(a: np.ndarray, b: np.ndarray, names: tuple[str, str]) -> tuple[np.ndarray, np.ndarray]:
    x, y = _series(a, names[0]), _series(b, names[1])
    if x.shape != y.shape:
        raise BadInputError(f"{names[0]} {x.shape} and {names[1]} {y.shape} must match")
    return x, y


def _check(block: int, n_boot: int, level: float) -> None:
    if int(block) < 1:
        raise BadInputError(f"block must be a positive number of windows, got {block}")
    if int(n_boot) < 1:
        raise BadInputError(f"n_boot must be at least 1, got {n_boot}")
    if not 0 < level < 1:
        raise BadInputError(f"level must lie strictly between 0 and 1, got {level}")


def _block_starts(n: int, block: int, n_boot: int, seed: int) -> Iterator[np.ndarray]:
    """Start indices of each resample's blocks, ``(replicates, ceil(n / block))`` per chunk.

    A resample is ``ceil(n / block)`` blocks of ``block`` consecutive values (starts drawn
    uniformly from the ``n - block + 1`` possible), joined and cut to ``n`` values. A block
    longer than the series is cut to ``n`` (every resample is then the series itself).
    """
    rng = np.random.default_rng(seed)
    k = -(-n // block)
    rows = max(1, _STARTS_PER_CHUNK // k)
    for done in range(0, n_boot, rows):
        yield rng.integers(0, n - block + 1, size=(min(rows, n_boot - done), k))


def _resampled_means(
    series: tuple[np.ndarray, ...], n: int, block: int, n_boot: int, seed: int
) -> list[np.ndarray]:
    """The mean of every resample ``(n_boot,)`` of each series, the SAME blocks for all of
    them, from cumulative sums (no ``(n_boot, n)`` array)."""
    sums = [np.concatenate([[0.0], np.cumsum(v)]) for v in series]
    out: list[list[np.ndarray]] = [[] for _ in series]
    for starts in _block_starts(n, block, n_boot, seed):
        tail = n - (starts.shape[1] - 1) * block  # length of the last, cut block
        head, last = starts[:, :-1], starts[:, -1]
        for c, acc in zip(sums, out, strict=True):
            total = (c[head + block] - c[head]).sum(axis=1) + (c[last + tail] - c[last])
            acc.append(total / n)
    return [np.concatenate(acc) for acc in out]


def _percentile_interval(replicates: np.ndarray, level: float) -> tuple[float, float]:
    kept = replicates[np.isfinite(replicates)]
    if kept.size == 0:
        return NAN, NAN
    alpha = 1.0 - level
    lo, hi = np.quantile(kept, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def moving_block_bootstrap_ci(
    values: np.ndarray,
    statistic: Callable[[np.ndarray], float] = np.mean,
    *,
    block: int,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile interval ``(lo, hi)`` of ``statistic`` of ``values`` ``(n,)`` by the moving
    block bootstrap: each of ``n_boot`` resamples joins random blocks of ``block`` consecutive
    values. The same ``seed`` gives the same interval; ``(nan, nan)`` for an empty series.
    """
    _check(block, n_boot, level)
    v = _series(values, "values")
    n = v.size
    if n == 0:
        return NAN, NAN
    b = min(int(block), n)
    if statistic is np.mean:  # fast path, the same resamples as the general one
        (replicates,) = _resampled_means((v,), n, b, int(n_boot), seed)
    else:
        offsets = np.arange(b)
        replicates = np.array(
            [
                float(statistic(v[(row[:, None] + offsets).reshape(-1)[:n]]))
                for starts in _block_starts(n, b, int(n_boot), seed)
                for row in starts
            ]
        )
    return _percentile_interval(replicates, level)


def skill_interval(
    model_loss: np.ndarray,
    persistence_loss: np.ndarray,
    block: int,
    *,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile interval of skill = 1 − mean(model) / mean(persistence) over per-window
    losses ``(n,)`` x2, by a paired moving block bootstrap (the SAME blocks of windows for both
    series). Resamples where persistence's mean loss is 0 are left out; ``(nan, nan)`` when
    none is left or the series are empty.
    """
    _check(block, n_boot, level)
    m, p = _pair(model_loss, persistence_loss, ("model_loss", "persistence_loss"))
    n = m.size
    if n == 0:
        return NAN, NAN
    b = min(int(block), n)
    model_mean, persistence_mean = _resampled_means((m, p), n, b, int(n_boot), seed)
    with np.errstate(divide="ignore", invalid="ignore"):
        skill = 1.0 - model_mean / persistence_mean
    return _percentile_interval(np.where(persistence_mean > 0, skill, np.nan), level)


def diebold_mariano(loss_a: np.ndarray, loss_b: np.ndarray, horizon: int) -> DMResult:
    """Diebold–Mariano test of equal expected loss, per-window losses ``(n,)`` x2, with the
    Harvey–Leybourne–Newbold small-sample correction.

    ``d = loss_a − loss_b``; long-run variance ``γ0 + 2 Σ_{k=1}^{h−1} γk`` (autocovariances
    ``γk = Σ_t (d_t − d̄)(d_{t−k} − d̄) / n``, rectangular window up to lag ``h − 1``, ``h`` the
    horizon); ``DM = d̄ / sqrt(LRV / n)``, times ``sqrt((n + 1 − 2h + h(h − 1)/n) / n)``; two-sided
    p-value from Student t with ``n − 1`` degrees of freedom. Negative: ``a`` has the smaller
    loss. The rectangular estimate can come out negative (few windows, h > 1); then the
    Newey–West (Bartlett) weights ``1 − k/h``, never negative, are used instead (``kernel``).
    Statistic and p-value are NaN, never an exception, when the test is undefined: n < 2, a
    non-finite loss, a constant difference (identical losses: zero variance, not p = 1), or a
    correction factor that is not positive (h too long for n). Mismatched shapes raise
    ``BadInputError``.
    """
    a, b = _pair(loss_a, loss_b, ("loss_a", "loss_b"))
    h = int(horizon)
    if h < 1:
        raise BadInputError(f"horizon must be at least 1, got {horizon}")
    d = a - b
    n = d.size
    mean_diff = float(np.mean(d)) if n else NAN
    undefined = DMResult(NAN, NAN, n, mean_diff)
    if n < 2 or not np.all(np.isfinite(d)) or np.ptp(d) == 0:
        return undefined
    u = d - mean_diff
    gammas = [float(u[k:] @ u[: n - k]) / n for k in range(min(h - 1, n - 1) + 1)]
    kernel = "rectangular"
    long_run_variance = gammas[0] + 2.0 * sum(gammas[1:])
    if not long_run_variance > 0:
        kernel = "bartlett"
        long_run_variance = gammas[0] + 2.0 * sum(
            (1 - k / h) * g for k, g in enumerate(gammas) if k > 0
        )
    correction = (n + 1 - 2 * h + h * (h - 1) / n) / n
    if not (long_run_variance > 0 and correction > 0):
        return undefined
    statistic = mean_diff / math.sqrt(long_run_variance / n) * math.sqrt(correction)
    p_value = float(2.0 * stats.t.sf(abs(statistic), df=n - 1))
    return DMResult(float(statistic), p_value, n, mean_diff, kernel)


def interval_over_folds(values: np.ndarray, level: float = 0.95) -> FoldInterval:
    """Mean of a metric over walk-forward folds ``(K,)`` and its Student t interval,
    ``mean ± t_{(1+level)/2, K−1} · s / sqrt(K)``; the interval is NaN when K < 2."""
    if not 0 < level < 1:
        raise BadInputError(f"level must lie strictly between 0 and 1, got {level}")
    v = _series(values, "values")
    k = v.size
    mean = float(np.mean(v)) if k else NAN
    if k < 2:
        return FoldInterval(mean, NAN, NAN, k)
    half = float(stats.t.ppf((1 + level) / 2, df=k - 1)) * float(np.std(v, ddof=1)) / math.sqrt(k)
    return FoldInterval(mean, mean - half, mean + half, k)


def versus_persistence(
    model_loss: np.ndarray,
    persistence_loss: np.ndarray,
    horizon: int,
    *,
    is_persistence: bool = False,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, float | None]:
    """A forecaster against persistence on the same windows, per-window losses ``(n,)`` x2:
    ``skill_lo``, ``skill_hi`` (paired moving block bootstrap, block = the horizon K) and
    ``dm_stat``, ``dm_p`` (Diebold–Mariano, horizon K; None for persistence itself, the
    reference). JSON-safe: None where a value is undefined."""
    lo, hi = skill_interval(
        model_loss, persistence_loss, horizon, n_boot=n_boot, level=level, seed=seed
    )
    dm = None if is_persistence else diebold_mariano(model_loss, persistence_loss, horizon)
    return {
        "skill_lo": finite_or_none(lo),
        "skill_hi": finite_or_none(hi),
        "dm_stat": None if dm is None else finite_or_none(dm.statistic),
        "dm_p": None if dm is None else finite_or_none(dm.p_value),
    }
