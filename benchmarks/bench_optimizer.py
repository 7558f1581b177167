"""Time one mean-variance rebalance (risk model + solve) at 30 and at ~500 assets.

    python benchmarks/bench_optimizer.py [--solves 30] [--lookback 252] [--risk-factors 20]
                                         [--solver newton|cvxpy]

Real daily returns from the developers' data (Dow 30 file; the S&P 500 file for the large
case), 2018-2019, a fresh random mu each solve (the previous weights carried over, as in a
backtest). Reports the median milliseconds of the Ledoit-Wolf risk model and of the solve,
the number of risk columns (exact: N for N <= T, T for N > T; K with --risk-factors K where
N > T), the first call's time and how often the Newton solver fell back to cvxpy. Falls
back to synthetic returns where the data is absent.
"""
from __future__ import annotations

import argparse
import logging
import os
import statistics
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from optimizers import MeanVarianceOptimizer, risk_model

DATA = Path(os.environ.get("STORM_BT_SHARED_DATA",
                           Path(__file__).resolve().parents[2] / "shared" / "data"))
log = logging.getLogger("bench_optimizer")


def _returns(file: str, n_assets: int, days: int) -> np.ndarray:
    path = DATA / file
    if path.exists():
        from storm_bt.data import load_panel

        panel = load_panel(path).since("2017-01-01").until("2019-12-31")
        rets = panel.returns().dropna(axis=1, thresh=days).iloc[-days:]
        return rets.iloc[:, :n_assets].to_numpy()
    log.warning("%s absent: synthetic returns", path)
    rng = np.random.default_rng(0)
    return rng.normal(0, 0.01, (days, 1)) + rng.normal(0, 0.015, (days, n_assets))


def bench(returns: np.ndarray, solves: int, factors: int | None = None,
          solver: str = "newton") -> dict:
    n = returns.shape[1]
    tradable = np.isfinite(returns).sum(axis=0) >= 60
    opt = MeanVarianceOptimizer(n, risk_aversion=5.0, max_weight=max(0.1, 2.0 / tradable.sum()),
                                turnover_penalty=1e-3, solver=solver)
    rng = np.random.default_rng(1)
    w = np.zeros(n)
    t0 = time.perf_counter()
    model = risk_model(returns, tradable, factors=factors)
    w = opt.weights(rng.normal(0, 1e-3, n), model, tradable, w)
    first = time.perf_counter() - t0
    risk_ms, solve_ms = [], []
    for _ in range(solves):
        t0 = time.perf_counter()
        model = risk_model(returns, tradable, factors=factors)
        t1 = time.perf_counter()
        w = opt.weights(rng.normal(0, 1e-3, n), model, tradable, w)
        t2 = time.perf_counter()
        risk_ms.append(1e3 * (t1 - t0))
        solve_ms.append(1e3 * (t2 - t1))
    total = [r + s for r, s in zip(risk_ms, solve_ms)]
    return {"assets": int(tradable.sum()), "risk_columns": model.loadings.shape[1],
            "first_s": first, "risk_ms": statistics.median(risk_ms),
            "solve_ms": statistics.median(solve_ms), "total_ms": statistics.median(total),
            "fallbacks": opt.fallbacks, "inaccurate": opt.inaccurate, "failures": opt.failures}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--solves", type=int, default=30)
    p.add_argument("--lookback", type=int, default=252)
    p.add_argument("--risk-factors", type=int, metavar="K",
                   help="K-factor risk model where N > lookback (default: exact)")
    p.add_argument("--solver", choices=["newton", "cvxpy"], default="newton")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    cases = [("dj30_daily.csv.gz", 30), ("sp500_daily.parquet", 500)]
    for file, n in cases:
        with threadpool_limits(limits=1, user_api="blas"):  # as `rebalance_weights` runs it
            r = bench(_returns(file, n, args.lookback), args.solves, args.risk_factors, args.solver)
        log.info("%4d assets, %d risk columns, %s: risk model %.1f ms + solve %.1f ms = %.1f ms "
                 "(medians of %d), first call %.2f s, cvxpy fallbacks %d, reduced accuracy %d, "
                 "failures %d",
                 r["assets"], r["risk_columns"], args.solver, r["risk_ms"], r["solve_ms"],
                 r["total_ms"], args.solves, r["first_s"], r["fallbacks"], r["inaccurate"],
                 r["failures"])


if __name__ == "__main__":
    main()
