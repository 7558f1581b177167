"""Portfolio backtest: predict next-day returns, turn them into weights, trade them in backtrader.

The flags become a `storm_bt.experiments.PortfolioConfig`; `run_portfolio` does the work
(see `storm_bt.experiments.portfolio`); this module writes the files.

Outputs in --out: tearsheet.html, metrics.json, predictions.csv, weights.csv, equity.csv,
equity.png, config.json (rerun it with --config).
"""
from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd

from storm_bt.backtest import common
from storm_bt.errors import StormBtError
from storm_bt.experiments.portfolio import (EQUAL_WEIGHT, OPTIMIZERS, SOLVERS, PortfolioConfig,
                                            PortfolioResult)

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    common.add_data_arguments(parser)
    common.add_model_arguments(parser)
    g = parser.add_argument_group("portfolio")
    g.add_argument("--optimizer", choices=OPTIMIZERS, default="mean-variance",
                   help="mean-variance (cvxpy, Ledoit-Wolf covariance; default) or topk "
                        "(equal weight on the top --topk names with dropout)")
    g.add_argument("--rebalance", type=int, default=5, metavar="DAYS",
                   help="rebalance every N trading days (default 5)")
    g.add_argument("--cost-bps", type=float, default=10.0, metavar="BPS",
                   help="commission in basis points of traded value (default 10)")
    g.add_argument("--max-weight", type=float, metavar="W",
                   help="upper bound of one stock's weight (default 0.1, raised to 2/N for a "
                        "universe of N < 20 tickers)")
    g.add_argument("--risk-aversion", type=float, default=5.0, metavar="GAMMA",
                   help="gamma in mu'w - gamma w'Sigma w - kappa |w - w_prev|_1 (default 5)")
    g.add_argument("--turnover-penalty", type=float, metavar="KAPPA",
                   help="kappa, the L1 turnover penalty (default: the cost, --cost-bps / 1e4)")
    g.add_argument("--long-short", action="store_true",
                   help="allow short positions (-w_max <= w <= w_max, gross exposure <= --gross-limit)")
    g.add_argument("--gross-limit", type=float, default=2.0,
                   help="gross exposure limit sum|w| in --long-short mode (default 2)")
    g.add_argument("--lookback", type=int, default=252, metavar="DAYS",
                   help="trailing days of returns for the covariance estimate (default 252)")
    g.add_argument("--horizon", type=float, metavar="H",
                   help="days a book is held, to which mu and Sigma are scaled against the "
                        "one-off cost (default: the --rebalance spacing; 1: the one-day model)")
    g.add_argument("--risk-factors", type=int, metavar="K",
                   help="K statistical factors (PCA of the Ledoit-Wolf estimate) for the risk "
                        "model where the names outnumber the lookback days (default: exact)")
    g.add_argument("--solver", choices=SOLVERS, default="auto",
                   help="auto (dual Newton above 100 names, cvxpy below; default), newton or cvxpy")
    g.add_argument("--topk", type=int, default=5, help="names held by --optimizer topk (default 5)")
    g.add_argument("--n-drop", type=int, default=3,
                   help="names replaced per rebalance at most by --optimizer topk (default 3)")
    g.add_argument("--cash", type=float, default=1_000_000.0, help="initial cash (default 1e6)")
    g.add_argument("--benchmark", default=EQUAL_WEIGHT, metavar="SPEC",
                   help="tear-sheet benchmark: 'equal-weight' (the universe, default) or "
                        "PATH:TICKER of a long price file, e.g. shared/data/benchmarks_daily.csv.gz:SPY")
    g.add_argument("--ensemble", nargs="+", type=int, metavar="SEED", default=(),
                   help="fit the model once per SEED (at least two) and trade one book on "
                        "each day's z-scored predictions averaged over the seeds (default: "
                        "one fit with --seed)")
    common.add_refit_arguments(parser)
    common.add_grid_arguments(parser)
    common.add_run_arguments(parser, seeds=True)


def config_from_args(args: argparse.Namespace) -> PortfolioConfig:
    """The run's config: from --config FILE, else from the flags (validated here)."""
    if args.config:
        return common.config_from_file(PortfolioConfig, args.config, "portfolio")
    return PortfolioConfig(
        data=common.data_config(args), model=args.model, model_settings=common.model_settings(args),
        seed=args.seed, optimizer=args.optimizer, rebalance=args.rebalance, cost_bps=args.cost_bps,
        max_weight=args.max_weight, risk_aversion=args.risk_aversion,
        turnover_penalty=args.turnover_penalty, long_short=args.long_short,
        gross_limit=args.gross_limit, lookback=args.lookback, topk=args.topk, n_drop=args.n_drop,
        cash=args.cash, benchmark=args.benchmark, horizon=args.horizon,
        risk_factors=args.risk_factors, solver=args.solver, refit_every=args.refit_every,
        train_window=args.train_window, ensemble=tuple(args.ensemble))


def write_outputs(result: PortfolioResult, out: Path) -> None:
    """Every output file of a portfolio run, staged: all appear together, or none."""
    from reports import (atomic_write_csv, atomic_write_json, plot_equity_drawdown,
                         staged_outputs, write_tearsheet)
    from storm_bt.experiments.record import run_record

    title = f"storm_bt {result.model_name} + {result.config.optimizer}"
    with staged_outputs(out) as stage:
        atomic_write_csv(long_frame(result.predictions, "prediction"), stage / "predictions.csv",
                         index=False)
        atomic_write_csv(long_frame(result.weights, "weight"), stage / "weights.csv", index=False)
        atomic_write_csv(pd.DataFrame({
            "date": result.equity.index, "equity": result.equity.to_numpy(),
            "return": result.returns.reindex(result.equity.index).to_numpy()}),
            stage / "equity.csv", index=False)
        atomic_write_json(result.metrics, stage / "metrics.json")
        write_tearsheet(result.returns, result.benchmark, stage / "tearsheet.html", title=title)
        plot_equity_drawdown(result.returns, stage / "equity.png", benchmark=result.benchmark,
                             title=title)
        atomic_write_json(run_record("portfolio", result.config, result.panel, result.split,
                                     model=result.model_config, max_weight=result.max_weight,
                                     refits=[r.as_dict() for r in result.refits],
                                     timings=result.timings, seconds=round(result.seconds, 1)),
                          stage / "config.json")


def write_seed_outputs(results: list[PortfolioResult], out: Path, panel) -> str:
    """A multi-seed run: every seed's files in seed-<s>/, and seeds.csv / seeds.md beside
    them (each metric per seed, and its mean ± standard error over seeds)."""
    from reports import atomic_write_csv, atomic_write_text, staged_outputs
    from reports.tables import mean_cell, markdown
    from storm_bt.experiments.portfolio import seed_summary

    table = seed_summary(results)
    summary = {c: mean_cell(table[c], 4, spread="se") for c in table.columns if c != "seed"}
    text = (f"Portfolio over seeds {' '.join(map(str, table['seed']))}: "
            f"{results[0].model_name} + {results[0].config.optimizer} "
            f"(mean ± standard error over seeds)\n\n"
            f"{markdown(pd.DataFrame([summary], index=['mean ± se']))}\n\n"
            f"{markdown(table.set_index('seed').round(4))}\n")
    with staged_outputs(out) as stage:
        for result in results:
            result.panel = panel
            write_outputs(result, stage / f"seed-{result.config.seed}")
        atomic_write_csv(table, stage / "seeds.csv", index=False)
        atomic_write_text(stage / "seeds.md", text)
    return text


def run(args: argparse.Namespace) -> int:
    from storm_bt.experiments.portfolio import run_portfolio

    started = time.perf_counter()
    if args.seeds and args.ensemble and not args.config:
        raise StormBtError("--seeds and --ensemble: give one of them (--seeds trades one book "
                           "per seed, --ensemble one book on the seeds' average)")
    config = config_from_args(args)
    out = common.run_folder(args, "portfolio")
    common.check_cache_dir(args)
    if args.seeds:
        from storm_bt.experiments.data import load_experiment_data
        from storm_bt.experiments.portfolio import run_portfolio_seeds

        results = run_portfolio_seeds(config, tuple(args.seeds), common.grid_settings(args))
        if not common.writes_outputs():
            return 0
        panel, _ = load_experiment_data(config.data)
        print(write_seed_outputs(results, out, panel))
        log.info("wrote %s (%.0f s)", out, time.perf_counter() - started)
        return 0
    result = run_portfolio(config)
    if not common.writes_outputs():
        return 0
    write_outputs(result, out)
    log.info("wrote %s (%.0f s); open %s", out, time.perf_counter() - started,
             out / "tearsheet.html")
    return 0


def long_frame(frame: pd.DataFrame, value: str) -> pd.DataFrame:
    """date x ticker -> long (date, ticker, value), NaN rows dropped."""
    long = frame.rename_axis(index="date", columns="ticker").stack(future_stack=True)
    long = long.rename(value).reset_index()
    long = long[np.isfinite(long[value].to_numpy(dtype=float))]
    long["date"] = long["date"].dt.strftime("%Y-%m-%d")
    return long
