"""Report figures (matplotlib, Agg). Each function returns a ``Figure``; saving is separate.

Every figure carries a title, axis labels with units and a legend where more than one thing is
drawn, so it reads at a glance in the HTML report.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")

import matplotlib.dates as mdates  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from storage.errors import BadInputError  # noqa: E402
from tasks.baselines import BASELINE_NAMES  # noqa: E402

SWEEP_COLUMNS: tuple[str, ...] = (
    "target",
    "kind",
    "strength",
    "repeat",
    "val_mse_scaled",
    "val_mse_price",
)


def _new_figure(width: float = 10.0, height: float = 5.0) -> Figure:
    # Figure() directly (not pyplot): no global state, nothing leaks between tests or threads.
    return Figure(figsize=(width, height), layout="constrained")


def figure_png(fig: Figure, dpi: int = 100) -> bytes:
    """Render a figure to PNG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def to_datetime_utc(ms: np.ndarray) -> pd.DatetimeIndex:
    """Epoch milliseconds ``(m,)`` -> UTC timestamps."""
    return pd.to_datetime(np.asarray(ms, dtype=np.int64).reshape(-1), unit="ms", utc=True)


def non_overlapping_windows(output_times: np.ndarray) -> np.ndarray:
    """Indices of windows whose forecasts do not overlap, earliest first: ``(n, K)`` -> ``(m,)``."""
    times = np.asarray(output_times)
    chosen: list[int] = []
    last_end = None
    for i in np.argsort(times[:, 0], kind="stable"):
        if last_end is None or times[i, 0] > last_end:
            chosen.append(int(i))
            last_end = times[i, -1]
    return np.array(chosen, dtype=np.int64)


def actual_series(times: np.ndarray, actual: np.ndarray) -> pd.Series:
    """One actual price per time from overlapping windows: ``(n, L)`` x2 -> Series by UTC time."""
    s = pd.Series(np.asarray(actual, dtype=np.float64).reshape(-1), index=to_datetime_utc(times))
    return s[~s.index.duplicated(keep="first")].sort_index()


def break_gaps(series: pd.Series) -> pd.Series:
    """Insert a NaN inside each jump longer than 1.5 typical steps, so a line is not drawn
    across a stretch the windows do not cover."""
    if len(series) < 3:
        return series
    step = series.index.to_series().diff()
    typical = step.median()
    gaps = step[step > 1.5 * typical].index
    if len(gaps) == 0:
        return series
    fill = pd.Series(np.nan, index=gaps - typical / 2)
    return pd.concat([series, fill]).sort_index()


def actual_vs_predicted_figure(
    output_times: np.ndarray,
    actual: np.ndarray,
    predicted: np.ndarray,
    *,
    model: str,
    split_label: str,
    price_unit: str = "USD",
    last_windows: int = 60,
    input_times: np.ndarray | None = None,
    inputs: np.ndarray | None = None,
) -> Figure:
    """The tutorial's figure: actual close as a line, each K-step forecast as red dots.

    ``output_times`` ``(n, K)`` epoch ms, ``actual`` and ``predicted`` ``(n, K)`` in price units.
    Only the last ``last_windows`` non-overlapping forecasts are drawn so the dots stay legible.
    With ``input_times``/``inputs`` ``(n, N)`` the actual line also covers the input candles, as
    in the tutorial; stretches no window covers are left blank.
    """
    times = np.asarray(output_times)
    keep = non_overlapping_windows(times)[-last_windows:]
    fig = _new_figure(11, 5)
    ax = fig.add_subplot()
    if keep.size:
        start = times[keep[0], 0]
        in_range = times[:, 0] >= start
        series = actual_series(times[in_range], np.asarray(actual)[in_range])
        if input_times is not None and inputs is not None:
            both = pd.concat([series, actual_series(input_times[in_range], inputs[in_range])])
            series = both[~both.index.duplicated(keep="first")].sort_index()
            series = series[series.index >= to_datetime_utc(times[keep[0]])[0]]
        series = break_gaps(series)
        ax.plot(series.index, series.to_numpy(), color="tab:blue", lw=1.2, label="actual close")
        pred = np.asarray(predicted)[keep]
        ax.scatter(
            to_datetime_utc(times[keep]),
            pred.reshape(-1),
            s=6,
            color="red",
            label=f"{model}: {times.shape[1]}-step forecasts",
            zorder=3,
        )
    ax.set_title(f"Actual vs predicted close: {model} on the {split_label} windows (last part)")
    ax.set_xlabel("time (UTC)")
    ax.set_ylabel(f"close ({price_unit})")
    locator = mdates.AutoDateLocator(maxticks=8)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    ax.grid(alpha=0.3)
    ax.legend(loc="best")
    return fig


def learning_curves_figure(
    histories: Mapping[str, pd.DataFrame],
    chosen_epochs: Mapping[str, int | None],
    *,
    statuses: Mapping[str, str] | None = None,
) -> Figure:
    """Loss and val_loss per epoch for each model (log scale), the chosen epoch marked."""
    names = list(histories)
    cols = min(3, max(1, len(names)))
    rows = max(1, int(np.ceil(len(names) / cols)))
    fig = _new_figure(4.2 * cols, 3.0 * rows + 0.6)
    fig.suptitle("Learning curves (MSE on scaled data); ● = epoch chosen by val_loss")
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat[len(names) :]:
        ax.set_visible(False)
    for ax, name in zip(axes.flat, names, strict=False):
        h = histories[name]
        epochs = h["epoch"].to_numpy()
        for col, color in (("loss", "tab:blue"), ("val_loss", "tab:orange")):
            values = h[col].to_numpy(dtype=np.float64)
            finite = np.isfinite(values) & (values > 0)
            ax.plot(epochs[finite], values[finite], marker=".", color=color, label=col)
        best = chosen_epochs.get(name)
        if best is not None and best in set(epochs.tolist()):
            v = float(h.loc[h["epoch"] == best, "val_loss"].iloc[0])
            ax.axvline(best, color="tab:green", ls="--", lw=1)
            ax.plot([best], [v], "o", color="tab:green", ms=8, label=f"chosen: epoch {best}")
        status = (statuses or {}).get(name, "ok")
        ax.set_title(name if status == "ok" else f"{name} ({status})")
        if status != "ok":
            ax.text(
                0.5,
                0.5,
                f"{status}: never chosen",
                transform=ax.transAxes,
                ha="center",
                color="tab:red",
                fontsize="large",
            )
        if np.any(np.isfinite(h[["loss", "val_loss"]].to_numpy(dtype=np.float64))):
            ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel("MSE (scaled)")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    return fig


def leaderboard_figure(
    model_rmse: Mapping[str, float],
    baseline_rmse: Mapping[str, float],
    *,
    split_label: str,
    price_unit: str = "USD",
    champion: str | None = None,
) -> Figure:
    """Horizontal bars of each model's RMSE (price units, log scale), baselines as lines."""
    finite = {k: v for k, v in model_rmse.items() if v is not None and np.isfinite(v)}
    names = sorted(finite, key=finite.get)
    fig = _new_figure(10, 1.2 + 0.45 * max(3, len(names)))
    ax = fig.add_subplot()
    colors = ["tab:green" if n == champion else "tab:gray" for n in names]
    bars = ax.barh(names, [finite[n] for n in names], color=colors)
    ax.bar_label(bars, labels=[f"{finite[n]:,.1f}" for n in names], padding=3, fontsize="small")
    ax.invert_yaxis()
    styles = ["--", ":", "-."]
    base_colors = ["tab:red", "tab:purple", "tab:brown"]
    for i, (name, value) in enumerate(baseline_rmse.items()):
        if value is not None and np.isfinite(value) and value > 0:
            ax.axvline(
                value,
                ls=styles[i % 3],
                color=base_colors[i % 3],
                lw=1.5,
                label=f"{name} baseline: {value:,.1f}",
            )
    values = [v for v in [*finite.values(), *baseline_rmse.values()] if v and np.isfinite(v)]
    if values and min(values) > 0:
        ax.set_xscale("log")
    title = f"RMSE on the {split_label} windows (lower is better)"
    if champion:
        title += f"; champion in green: {champion}"
    ax.set_title(title)
    ax.set_xlabel(f"RMSE ({price_unit}, log scale)")
    ax.grid(axis="x", alpha=0.3, which="both")
    if baseline_rmse:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), title="reference lines")
    return fig


def horizon_error_figure(
    rmse_by_step: Mapping[str, Sequence[float]],
    *,
    split_label: str,
    price_unit: str = "USD",
    candle_minutes: int | None = None,
) -> Figure:
    """RMSE per horizon step 1..K for each entry (``{name: (K,)}``)."""
    fig = _new_figure(10, 5)
    ax = fig.add_subplot()
    drawn: list[float] = []
    for name, values in rmse_by_step.items():
        v = np.asarray(values, dtype=np.float64)
        if not np.isfinite(v).any():
            continue
        steps = np.arange(1, v.size + 1)
        ls = "--" if name in BASELINE_NAMES else "-"
        ax.plot(steps, v, ls=ls, marker=".", label=name)
        drawn += [float(x) for x in v[np.isfinite(v) & (v > 0)]]
    if drawn and max(drawn) / min(drawn) > 30:  # one bad model would flatten the rest
        ax.set_yscale("log")
    unit = f" (1 step = {candle_minutes} min)" if candle_minutes else ""
    ax.set_title(f"Error by forecast step on the {split_label} windows")
    ax.set_xlabel(f"horizon step{unit}")
    log = ", log scale" if ax.get_yscale() == "log" else ""
    ax.set_ylabel(f"RMSE ({price_unit}{log})")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize="small", ncol=2, title="dashed = baseline")
    return fig


def validate_sweep(sweep: pd.DataFrame) -> pd.DataFrame:
    """Check the regularization sweep's columns (see ``SWEEP_COLUMNS``)."""
    missing = [c for c in SWEEP_COLUMNS if c not in sweep.columns]
    if missing:
        raise BadInputError(f"sweep table lacks columns {missing}")
    return sweep


def regularization_figure(
    sweep: pd.DataFrame,
    *,
    metric: str = "val_mse_price",
    price_unit: str = "USD",
) -> Figure:
    """Box plots of validation error over repeats, one panel per regularized target.

    Rows of ``sweep``: target (kernel/bias/activity/recurrent), kind (l1/l2/...), strength,
    repeat, val_mse_scaled, val_mse_price. Boxes are grouped by kind and strength.
    """
    validate_sweep(sweep)
    targets = list(dict.fromkeys(sweep["target"].astype(str)))
    cols = min(2, max(1, len(targets)))
    rows = max(1, int(np.ceil(len(targets) / cols)))
    fig = _new_figure(6.0 * cols, 3.6 * rows + 0.6)
    label = "validation MSE (" + (f"{price_unit}²" if metric == "val_mse_price" else "scaled") + ")"
    fig.suptitle(f"Regularization sweep: {label} over repeats")
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat[len(targets) :]:
        ax.set_visible(False)
    for ax, target in zip(axes.flat, targets, strict=False):
        part = sweep[sweep["target"].astype(str) == target]
        groups = part.groupby(["kind", "strength"], sort=True)[metric]
        data = [g.dropna().to_numpy(dtype=np.float64) for _, g in groups]
        labels = [f"{kind}\n{strength:g}" for (kind, strength), _ in groups]
        ax.boxplot(data, tick_labels=labels)
        ax.set_title(f"{target} regularizer")
        ax.set_xlabel("kind and strength")
        ax.set_ylabel(label)
        ax.grid(axis="y", alpha=0.3)
    return fig


def walk_forward_figure(rows: Sequence[Mapping], folds: Sequence[int]) -> Figure:
    """Per model, each fold's test skill (bar: its 95 % bootstrap interval) and the mean across
    folds. ``rows``: :func:`tasks.report.walkforward.summary_rows`; ``folds``: fold numbers."""
    fig = _new_figure(11.0, 5.0)
    ax = fig.add_subplot()
    n = len(folds)
    width = 0.8 / max(1, n)
    for k in range(n):
        xs, ys, err_lo, err_hi = [], [], [], []
        for i, r in enumerate(rows):
            f = r["per_fold"][k]
            if f["skill"] is None:
                continue
            xs.append(i - 0.4 + width * (k + 0.5))
            ys.append(f["skill"])
            lo = f["skill_lo"] if f["skill_lo"] is not None else f["skill"]
            hi = f["skill_hi"] if f["skill_hi"] is not None else f["skill"]
            err_lo.append(max(0.0, f["skill"] - lo))
            err_hi.append(max(0.0, hi - f["skill"]))
        ax.errorbar(xs, ys, yerr=[err_lo, err_hi], fmt="o", ms=4, capsize=2,
                    label=f"fold {folds[k]}")
    means = [r["mean_skill"] for r in rows]
    ax.scatter([i for i, m in enumerate(means) if m is not None],
               [m for m in means if m is not None], marker="_", s=400, c="black",
               label="mean across folds", zorder=3)
    ax.axhline(0.0, color="grey", lw=1, ls="--")
    ax.set_xticks(range(len(rows)), [r["model"] for r in rows], rotation=35, ha="right")
    finite = [f["skill"] for r in rows for f in r["per_fold"] if f["skill"] is not None]
    if finite and min(finite) < -1:  # one collapsed model must not flatten everyone else
        ax.set_ylim(max(min(finite), -1.0) - 0.05, max(0.1, max(finite) + 0.05))
        ax.text(0.01, 0.02, "skills below -1 are cut off (see the table)", fontsize=8,
                transform=ax.transAxes)
    ax.set_ylabel("test skill vs persistence (1 - MSE / MSE persistence)")
    ax.set_title(f"Walk-forward test skill per fold ({n} folds; bars: 95 % block bootstrap)")
    ax.legend(fontsize=8, ncols=min(6, n + 1))
    return fig


def protocol_skill_figure(rows: Sequence[Mapping]) -> Figure:
    """Per model, skill vs persistence under the seed protocol and under the honest one (bars,
    symmetric-log axis: a collapse at -1000 and a near-tie at -0.01 both stay readable).
    ``rows``: :func:`tasks.report.compare.comparison_rows`."""
    fig = _new_figure(11.0, 5.0)
    ax = fig.add_subplot()
    names = [r["model"] for r in rows]
    x = np.arange(len(names))
    for offset, key, label in ((-0.2, "seed_skill", "seed (validation windows: a leak)"),
                               (0.2, "honest_skill", "honest (test windows)")):
        values = [r.get(key) for r in rows]
        ax.bar([xi + offset for xi, v in zip(x, values, strict=True) if v is not None],
               [v for v in values if v is not None], width=0.4, label=label)
    ax.axhline(0.0, color="grey", lw=1)
    ax.set_yscale("symlog", linthresh=0.1)
    ax.set_xticks(x, names, rotation=35, ha="right")
    ax.set_ylabel("skill vs persistence (1 - MSE / MSE persistence; symlog)")
    ax.set_title("Skill vs persistence: the tutorial's protocol against the honest one")
    ax.legend(fontsize=8)
    return fig



def live_skill_figure(
    history: pd.DataFrame, window: int, threshold: float, title: str, unit: str = "price"
) -> Figure:
    """Live scores over time: top, the champion's rolling skill vs persistence over the last
    ``window`` issues (threshold dashed); bottom, each issue's mean absolute error, champion
    and persistence. ``history``: :func:`tasks.forecast.score.per_issue` (one row per issue)."""
    fig = _new_figure(10.0, 6.0)
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(1, 1))
    if history.empty:
        top.text(0.5, 0.5, "no matured forecast scored yet", ha="center", va="center",
                 transform=top.transAxes)
    else:
        t = history["issued_at"]
        top.plot(t, history["rolling_skill"], lw=1.2, label=f"rolling skill ({window} issues)")
        bottom.plot(t, history["mae"], lw=0.8, label="champion")
        bottom.plot(t, history["mae_persistence"], lw=0.8, label="persistence", alpha=0.8)
        bottom.legend(fontsize=8)
        bottom.xaxis.set_major_formatter(mdates.ConciseDateFormatter(bottom.xaxis.get_major_locator()))
    top.axhline(0.0, color="grey", lw=1)
    top.axhline(threshold, color="#b00020", lw=1, ls="--", label=f"degraded below {threshold:g}")
    top.set_ylabel("skill vs persistence")
    top.legend(fontsize=8)
    top.set_title(title)
    bottom.set_ylabel(f"MAE per issue ({unit})")
    bottom.set_xlabel("issue time (UTC, open of the last input candle)")
    return fig
