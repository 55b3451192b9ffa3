"""The report flow: select checkpoints by val_loss, score models and baselines on the same
windows, judge the winner by the champion gate and record it (champion or challenger), write
``reports/<run-id>/report.html`` (self-contained) with the leaderboard and the gate's decision,
publish Prefect artifacts. Plus ``compare``: tutorial vs seed vs honest.
"""

from __future__ import annotations

from prefect import flow, get_run_logger

from flows.params import (
    DEFAULT_INTERVAL,
    DEFAULT_SYMBOL,
    DataDir,
    Intervals,
    RunId,
    RunName,
    RunNames,
    Symbols,
    market_list,
)
from storage.layout import DataLayout
from storage.runs import validate_name
from tasks.evaluation import evaluate_run_task
from tasks.report.champion import record_champion_task
from tasks.report.compare import (
    publish_comparison_task,
    read_leaderboard_task,
    write_comparison_task,
)
from tasks.report.files import write_report_task
from tasks.report.gate import gate_settings
from tasks.report.inputs import report_inputs_task, reusable_report_task, run_kind_task
from tasks.report.live import live_section_task
from tasks.report.markets import markets_summary_task
from tasks.report.publish import publish_artifacts_task
from tasks.report.render import render_report_task
from tasks.report.sweep import load_sweep_task
from tasks.report.sweep_report import render_sweep_report_task
from tasks.report.walkforward import walk_forward_task


def _flow_run_id() -> str | None:
    from prefect.runtime import flow_run

    run_id = flow_run.id
    return str(run_id) if run_id else None


@flow(name="report", log_prints=False, validate_parameters=True)
def report(run_id: RunId = None, data_dir: DataDir = None) -> str:
    """Report one run (default: the latest); returns the path of its ``report.html``. A sweep
    run gets its own report: its box plots, a row per setting, its dataset and settings.

    Args:
        run_id: The training or sweep run to report; empty: the latest run.
        data_dir: Data directory holding the stores (default $CRYPTOFLOW_DATA_DIR or ./data).
    """
    root = str(DataLayout.at(data_dir).root)
    flow_run_id = _flow_run_id()
    run_id, fingerprint = report_inputs_task(root, run_id)
    existing = reusable_report_task(root, run_id, fingerprint)
    if existing is not None:
        get_run_logger().info("report of run %s is up to date: %s", run_id, existing)
        return existing
    if run_kind_task(root, run_id) == "sweep":  # its own box plots, dataset and settings
        rendered = render_sweep_report_task(root, run_id, flow_run_id)
        path = write_report_task(root, rendered, fingerprint)["report_html"]
        get_run_logger().info("report of sweep run %s -> %s", run_id, path)
        return path
    rule, margin = gate_settings()  # CRYPTOFLOW_CHAMPION_GATE / _MARGIN, refused when bad
    evaluation = evaluate_run_task(root, run_id)
    gate = record_champion_task(root, evaluation, flow_run_id, rule, margin)
    sweep = load_sweep_task(root, evaluation.run_id)
    live = live_section_task(root, evaluation.run_id)  # when it is the scored champion
    rendered = render_report_task(evaluation, sweep, flow_run_id, gate, live)
    paths = write_report_task(root, rendered, fingerprint)
    publish_artifacts_task(rendered, paths["report_html"])
    get_run_logger().info(
        "report of run %s: winner %s -> %s; champion gate: %s",
        evaluation.run_id,
        evaluation.champion,
        paths["report_html"],
        "no winner" if gate is None else gate.sentence,
    )
    return paths["report_html"]


@flow(name="compare-protocols", log_prints=False, validate_parameters=True)
def compare(seed_run: RunName, honest_run: RunName, data_dir: DataDir = None) -> str:
    """Tutorial vs seed vs honest, side by side; returns the path of the comparison HTML.

    Args:
        seed_run: A run trained on `seed` windows (the tutorial's protocol).
        honest_run: A run trained on `honest` windows.
        data_dir: Data directory holding the stores (default $CRYPTOFLOW_DATA_DIR or ./data).
    """
    root = str(DataLayout.at(data_dir).root)
    boards = {}
    for run in (seed_run, honest_run):
        validate_name(run)
        board = read_leaderboard_task(root, run)
        if board is None:
            report(run, root)
            board = read_leaderboard_task(root, run)
        boards[run] = board
    path, rows = write_comparison_task(
        root, seed_run, honest_run, boards[seed_run], boards[honest_run]
    )
    publish_comparison_task(rows, seed_run, honest_run)
    return path


@flow(name="walk-forward", log_prints=False, validate_parameters=True)
def walk_forward(run_ids: RunNames, data_dir: DataDir = None) -> str:
    """The walk-forward verdict over reported fold runs (oldest first); returns its page's path.

    Args:
        run_ids: The fold runs, oldest fold first, each already reported.
        data_dir: Data directory holding the stores (default $CRYPTOFLOW_DATA_DIR or ./data).
    """
    root = str(DataLayout.at(data_dir).root)
    path = walk_forward_task(root, list(run_ids))
    get_run_logger().info("walk-forward verdict over %d folds -> %s", len(run_ids), path)
    return path


@flow(name="markets-summary", log_prints=False, validate_parameters=True)
def markets_summary(
    symbols: Symbols = [DEFAULT_SYMBOL],  # noqa: B006 - Prefect shows the default in its form
    intervals: Intervals = [DEFAULT_INTERVAL],  # noqa: B006
    data_dir: DataDir = None,
) -> str:
    """Refresh the cross-market index (``reports/markets.html``): each market's champion, its
    test skill and live skill; returns the page's path.

    Args:
        symbols: Poloniex markets, BASE_QUOTE (e.g. BTC_USDT).
        intervals: Candle intervals (Poloniex names); every symbol at each.
        data_dir: Data directory holding the stores (default $CRYPTOFLOW_DATA_DIR or ./data).
    """
    markets = [list(m) for m in market_list(symbols, intervals)]
    path = markets_summary_task(str(DataLayout.at(data_dir).root), markets)
    get_run_logger().info("%d market(s) -> %s", len(markets), path)
    return path
