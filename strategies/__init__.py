"""Backtrader strategies that trade plain DataFrames of signals or target weights.

    weights (date x ticker)  ->  PortfolioStrategy (orders at the next open)  ->  BacktestResult

`feeds` turns a `Panel` into backtrader feeds on total-return prices, `base.SignalStrategy`
hands each signal row to one decision hook at its date's close, `portfolio.PortfolioStrategy`
rebalances to target weights (hook: `target_weights`), `runner.run_portfolio_backtest` wires
the cerebro. `trading.TradingStrategy` buys all-in, holds or sells all of one stock at the
decision day's close (hook: `decide`; policies `ThresholdPolicy`, `RLPolicy`, `BuyAndHold`;
runner `run_trading_backtest`). Nothing here imports a model or an optimizer.
"""
import sys

import matplotlib

# backtrader imports pyplot lazily (for plot()): make sure it never needs a display.
if "matplotlib.pyplot" not in sys.modules:
    matplotlib.use("Agg")

from strategies.base import SignalStrategy  # noqa: E402
from strategies.commission import FractionalCommInfo, fractional_commission  # noqa: E402
from strategies.feeds import ArrayFeed, panel_feeds  # noqa: E402
from strategies.portfolio import CASH_RESERVE, PortfolioStrategy  # noqa: E402
from strategies.runner import BacktestResult, run_portfolio_backtest  # noqa: E402
from strategies.trading import (Action, BuyAndHold, RLPolicy, ThresholdPolicy,  # noqa: E402
                                TradingResult, TradingStrategy, run_trading_backtest)

__all__ = [
    "Action",
    "ArrayFeed",
    "BacktestResult",
    "BuyAndHold",
    "CASH_RESERVE",
    "FractionalCommInfo",
    "PortfolioStrategy",
    "RLPolicy",
    "SignalStrategy",
    "ThresholdPolicy",
    "TradingResult",
    "TradingStrategy",
    "fractional_commission",
    "panel_feeds",
    "run_portfolio_backtest",
    "run_trading_backtest",
]
