"""Portfolio backtest: predict next-day returns, turn them into weights, trade them in backtrader.

Steps (each uses only data up to its decision date):
  1. load prices, cut them at --test-end, compute causal features and next-day labels;
  2. fit --model on the train range (valid range for early stopping), predict the test range;
  3. every --rebalance days, the optimizer turns the predictions of that day and a
     Ledoit-Wolf covariance of the trailing returns into target weights;
  4. backtrader executes the targets on the next bar with --cost-bps commission;
  5. the daily returns go to a quantstats tear sheet and metrics.json.

Outputs in --out: tearsheet.html, metrics.json, predictions.csv, weights.csv, equity.csv,
equity.png, config.json.
"""
from __future__ import annotations

import argparse
import logging
import time

import numpy as np
import pandas as pd

from storm_bt.backtest import common
from storm_bt.backtest.model_args import add_model_arguments, build_predictor
from storm_bt.data.benchmark import EQUAL_WEIGHT, load_benchmark
from storm_bt.dataset import build_feature_set
from storm_bt.errors import StormBtError

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    common.add_data_arguments(parser)
    add_model_arguments(parser)
    g = parser.add_argument_group("portfolio")
    g.add_argument("--optimizer", choices=["mean-variance", "topk"], default="mean-variance",
                   help="mean-variance (cvxpy, Ledoit-Wolf covariance; default) or topk "
                        "(equal weight on the top --topk names with dropout)")
    g.add_argument("--rebalance", type=int, default=5, metavar="DAYS",
                   help="rebalance every N trading days (default 5)")
    g.add_argument("--cost-bps", type=float, default=10.0, metavar="BPS",
                   help="commission in basis points of traded value (default 10)")
    g.add_argument("--max-weight", type=float, default=0.1, metavar="W",
                   help="upper bound of one stock's weight (default 0.1)")
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
    g.add_argument("--topk", type=int, default=5, help="names held by --optimizer topk (default 5)")
    g.add_argument("--n-drop", type=int, default=3,
                   help="names replaced per rebalance at most by --optimizer topk (default 3)")
    g.add_argument("--cash", type=float, default=1_000_000.0, help="initial cash (default 1e6)")
    g.add_argument("--benchmark", default=EQUAL_WEIGHT, metavar="SPEC",
                   help="tear-sheet benchmark: 'equal-weight' (the universe, default) or "
                        "PATH:TICKER of a long price file, e.g. shared/data/benchmarks_daily.csv.gz:SPY")
    common.add_run_arguments(parser)


def check_arguments(args: argparse.Namespace, n_assets: int) -> None:
    """Flag values that cannot work, as user errors."""
    if args.rebalance < 1:
        raise StormBtError(f"--rebalance {args.rebalance}: must be at least 1 day")
    if args.cost_bps < 0:
        raise StormBtError(f"--cost-bps {args.cost_bps}: must be >= 0")
    if not 0 < args.max_weight <= 1:
        raise StormBtError(f"--max-weight {args.max_weight}: must be in (0, 1]")
    if not args.long_short and args.optimizer == "mean-variance" and args.max_weight * n_assets < 1:
        raise StormBtError(
            f"--max-weight {args.max_weight} x {n_assets} tickers < 1: a fully invested long-only "
            f"book is impossible; use --max-weight {1 / n_assets:.3g} or more")
    if args.optimizer == "topk" and not 1 <= args.topk <= n_assets:
        raise StormBtError(f"--topk {args.topk}: must be between 1 and the {n_assets} tickers")
    if args.lookback < 20:
        raise StormBtError(f"--lookback {args.lookback}: use at least 20 days")
    if args.cash <= 0:
        raise StormBtError(f"--cash {args.cash}: must be positive")


def run(args: argparse.Namespace) -> int:
    from optimizers import make_optimizer, rebalance_weights
    from reports import (atomic_write_csv, atomic_write_json, performance_metrics,
                         plot_equity_drawdown, staged_outputs, write_tearsheet)
    from storm_bt.evaluation import ic_summary
    from strategies import run_portfolio_backtest

    started = time.perf_counter()
    panel, split = common.load_data(args)
    check_arguments(args, len(panel.tickers))
    out = common.run_folder(args, "portfolio")
    common.seed_everything(args.seed)
    panel = panel.until(split.test_end)  # nothing after the test period is ever read
    test_start, test_end = split.test

    benchmark = load_benchmark(args.benchmark, panel)
    bench_test = benchmark.loc[test_start:test_end].iloc[1:]
    if bench_test.isna().any():
        gap = bench_test.index[bench_test.isna()][0]
        raise StormBtError(f"--benchmark {args.benchmark} has no price on {gap.date()} inside the "
                           "test period; choose another benchmark or test period")

    log.info("features for %d tickers x %d days", len(panel.tickers), len(panel.dates))
    data = build_feature_set(panel)
    predictor = build_predictor(args)
    log.info("fitting %s on %s .. %s", predictor.name, *[d.date() for d in split.train])
    predictor.fit(data, split)
    predictions = predictor.predict(data, test_start, test_end)
    if predictions.empty:
        raise StormBtError(f"no test dates between {test_start.date()} and {test_end.date()}")

    # Weights decided on the last test day would never trade: stop one day before.
    decision_dates = predictions.index[:-1:args.rebalance]
    kappa = args.turnover_penalty if args.turnover_penalty is not None else args.cost_bps / 1e4
    optimizer = make_optimizer(
        args.optimizer, n_assets=len(panel.tickers), risk_aversion=args.risk_aversion,
        max_weight=args.max_weight, turnover_penalty=kappa, long_short=args.long_short,
        gross_limit=args.gross_limit, k=args.topk, n_drop=args.n_drop)
    weights = rebalance_weights(predictions, panel.returns(), decision_dates, optimizer,
                                lookback=args.lookback)

    result = run_portfolio_backtest(panel, weights, test_start, test_end, cash=args.cash,
                                    cost_bps=args.cost_bps)
    returns = result.returns
    realised = pd.DataFrame(data.labels, index=data.dates, columns=list(data.tickers))
    metrics = {
        # backtrader's turnover is traded value / book value; one-way turnover is half that.
        "portfolio": performance_metrics(returns, result.turnover / 2.0),
        "benchmark": performance_metrics(benchmark.reindex(returns.index).fillna(0.0)),
        "factor": ic_summary(predictions, realised.reindex(predictions.index)),
        "backtrader_sharpe": result.sharpe,
        "model": predictor.name,
        "test_period": [str(test_start.date()), str(test_end.date())],
    }

    bench_aligned = benchmark.reindex(returns.index).fillna(0.0).rename(benchmark.name)
    returns = returns.rename(f"{predictor.name} + {args.optimizer}")
    with staged_outputs(out) as stage:  # all files appear together, or none
        atomic_write_csv(_long(predictions, "prediction"), stage / "predictions.csv", index=False)
        atomic_write_csv(_long(weights, "weight"), stage / "weights.csv", index=False)
        atomic_write_csv(pd.DataFrame({"date": result.equity.index, "equity": result.equity.to_numpy(),
                                       "return": returns.reindex(result.equity.index).to_numpy()}),
                         stage / "equity.csv", index=False)
        atomic_write_json(metrics, stage / "metrics.json")
        write_tearsheet(returns, bench_aligned, stage / "tearsheet.html",
                        title=f"storm_bt {predictor.name} + {args.optimizer}")
        plot_equity_drawdown(returns, stage / "equity.png", benchmark=bench_aligned,
                             title=f"storm_bt {predictor.name} + {args.optimizer}")
        elapsed = time.perf_counter() - started
        atomic_write_json(common.run_record(args, "portfolio", panel, split,
                                            model=predictor.config(), seconds=round(elapsed, 1)),
                          stage / "config.json")
    p = metrics["portfolio"]
    log.info("annual return %.2f%%, Sharpe %.2f, max drawdown %.2f%%, RankIC %.4f",
             100 * p["annual_return"], p["sharpe"], 100 * p["max_drawdown"],
             metrics["factor"]["RankIC"])
    log.info("wrote %s (%.0f s); open %s", out, elapsed, out / "tearsheet.html")
    return 0


def _long(frame: pd.DataFrame, value: str) -> pd.DataFrame:
    """date x ticker -> long (date, ticker, value), NaN rows dropped."""
    long = frame.rename_axis(index="date", columns="ticker").stack(future_stack=True)
    long = long.rename(value).reset_index()
    long = long[np.isfinite(long[value].to_numpy(dtype=float))]
    long["date"] = long["date"].dt.strftime("%Y-%m-%d")
    return long
