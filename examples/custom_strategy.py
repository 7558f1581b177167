"""Change one decision of the portfolio strategy by subclassing it.

`CappedPortfolio` overrides the single hook `target_weights`: any name above `max_weight` is
cut to it and the excess stays in cash. Everything else (timing, costs, fills, records) is
inherited from `PortfolioStrategy`.

The weights are a causal momentum signal on the embedded data (skfolio's 20-stock S&P 500
sample): at the close of each month-end rebalance day t,

    m_i = adj_close_i(t) / adj_close_i(t - lookback) - 1,   w_i = max(m_i, 0) / sum_j max(m_j, 0)

(all cash when no name has positive momentum). It only reads prices up to t.

    python examples/custom_strategy.py [--start 2017-01-01] [--end 2022-12-28] [--max-weight 0.1]
"""
from __future__ import annotations

import argparse
import logging

import numpy as np
import pandas as pd

from storm_bt.data import Panel, load_panel
from strategies import BacktestResult, PortfolioStrategy, run_portfolio_backtest

log = logging.getLogger("custom_strategy")


class CappedPortfolio(PortfolioStrategy):
    """Target weights capped at `max_weight` per name; what is cut stays in cash."""

    params = (("max_weight", 0.10),)

    def target_weights(self, date: pd.Timestamp, signal_row: pd.Series) -> pd.Series | None:
        return signal_row.clip(upper=self.p.max_weight)


def momentum_weights(panel: Panel, start: str, end: str, lookback: int = 126,
                     every: int = 21) -> pd.DataFrame:
    """Long-only weights proportional to positive trailing momentum, every `every` days."""
    adj = panel.field("adj_close")
    momentum = adj / adj.shift(lookback) - 1.0
    days = adj.loc[start:end].index[::every]
    positive = momentum.loc[days].clip(lower=0.0).fillna(0.0)
    total = positive.sum(axis=1).replace(0.0, np.nan)
    return positive.div(total, axis=0).fillna(0.0)


def summary(result: BacktestResult) -> dict[str, float]:
    """Final value, annualised return and volatility, max drawdown, Sharpe, mean turnover."""
    equity, returns = result.equity, result.returns
    years = len(returns) / 252
    return {
        "final_value": float(equity.iloc[-1]),
        "annual_return": float((equity.iloc[-1] / equity.iloc[0]) ** (1 / years) - 1),
        "annual_volatility": float(returns.std() * np.sqrt(252)),
        "max_drawdown": float((equity / equity.cummax() - 1).min()),
        "sharpe_backtrader": result.sharpe,
        "mean_turnover": float(result.turnover.mean()),
        "mean_cash_share": float((result.cash / equity).iloc[1:].mean()),
    }


def main(argv: list[str] | None = None) -> dict[str, BacktestResult]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start", default="2017-01-01")
    parser.add_argument("--end", default="2022-12-28")
    parser.add_argument("--max-weight", type=float, default=0.10)
    parser.add_argument("--cost-bps", type=float, default=10.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    panel = load_panel()
    weights = momentum_weights(panel, args.start, args.end)
    results = {
        "base": run_portfolio_backtest(panel, weights, args.start, args.end,
                                       cost_bps=args.cost_bps),
        "capped": run_portfolio_backtest(panel, weights, args.start, args.end,
                                         cost_bps=args.cost_bps, strategy_cls=CappedPortfolio,
                                         max_weight=args.max_weight),
    }
    for name, result in results.items():
        metrics = summary(result)
        log.info("%-6s " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()), name)
    return results


if __name__ == "__main__":
    main()
