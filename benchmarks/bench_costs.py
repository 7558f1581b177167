"""Turnover and net Sharpe of the mean-variance book as the trading cost rises (Dow 30).

    python benchmarks/bench_costs.py [--costs 0 5 10 20 50] [--rebalance 5] [--horizons 1 auto]
                                     [--no-backtest]

A fixed prediction frame, so that only the optimiser changes: the 60-day price momentum
(close_t / close_{t-60} - 1, known at t's close) of the Dow 30 stocks, test period
2021-2023, a decision every --rebalance days, long-only, γ = 5, w_max = 0.1, κ = the cost.
For each cost and holding-horizon model (1: the one-day model before issue 11;
auto: the rebalance spacing) it reports the fraction of rebalances that change the book,
the mean one-way turnover per rebalance, and backtrader's net-of-cost Sharpe and annual
return (the cost charged on traded value, as `portfolio --cost-bps`).
"""
from __future__ import annotations

import argparse
import logging
import os
import time
from pathlib import Path

import numpy as np

from optimizers import book_change_summary, make_optimizer, rebalance_weights

DATA = Path(os.environ.get("STORM_BT_SHARED_DATA",
                           Path(__file__).resolve().parents[2] / "shared" / "data"))
log = logging.getLogger("bench_costs")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--costs", type=float, nargs="+", default=[0, 5, 10, 20, 50], metavar="BPS")
    p.add_argument("--rebalance", type=int, default=5)
    p.add_argument("--horizons", nargs="+", default=["1", "auto"])
    p.add_argument("--start", default="2021-01-01")
    p.add_argument("--end", default="2023-12-31")
    p.add_argument("--no-backtest", action="store_true", help="weights only (no net Sharpe)")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("optimizers").setLevel(logging.WARNING)

    from storm_bt.data import load_panel

    panel = load_panel(DATA / "dj30_daily.csv.gz").until(args.end)
    close = panel.field("close")
    momentum = close / close.shift(60) - 1.0
    predictions = momentum.loc[args.start:args.end]
    decisions = predictions.index[:-1:args.rebalance]
    returns = panel.returns()
    test_start, test_end = predictions.index[0], predictions.index[-1]
    rows = []
    for horizon in args.horizons:
        for bps in args.costs:
            t0 = time.perf_counter()
            opt = make_optimizer("mean-variance", n_assets=len(panel.tickers),
                                 turnover_penalty=bps / 1e4)
            weights = rebalance_weights(predictions, returns, decisions, opt,
                                        horizon=None if horizon == "auto" else float(horizon))
            solve_s = time.perf_counter() - t0
            book = book_change_summary(weights)
            row = {"horizon": horizon, "bps": bps, **book, "solve_s": solve_s,
                   "sharpe": np.nan, "annual_return": np.nan}
            if not args.no_backtest:
                from strategies import run_portfolio_backtest

                result = run_portfolio_backtest(panel, weights, test_start, test_end,
                                                cost_bps=bps)
                r = result.returns
                row["sharpe"] = result.sharpe
                row["annual_return"] = float((1 + r).prod() ** (252 / len(r)) - 1)
            rows.append(row)
            log.info("horizon %-4s cost %4.0f bps: %3d of %d rebalances change the book, "
                     "turnover %.4f per rebalance, net Sharpe %.2f, annual return %.2f%% "
                     "(weights %.1f s, fallbacks %d)", horizon, bps, book["changed"],
                     book["rebalances"], book["mean_turnover"], row["sharpe"],
                     100 * row["annual_return"], solve_s, opt.fallbacks)
    print("| horizon | cost (bps) | rebalances that change the book | one-way turnover / rebalance "
          "| net Sharpe | annual return |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['horizon']} | {r['bps']:g} | {r['changed']} of {r['rebalances']} | "
              f"{r['mean_turnover']:.4f} | {r['sharpe']:.2f} | {100 * r['annual_return']:.2f}% |")


if __name__ == "__main__":
    main()
