"""Backtrader strategies that trade plain pandas objects of signals or target weights.

    weights (date x ticker)     ->  PortfolioStrategy  (run_portfolio_backtest)  ->  BacktestResult
    one stock's signal by date  ->  TradingStrategy    (run_trading_backtest)    ->  TradingResult

`feeds` turns a `Panel` into backtrader feeds on total-return prices; `base.SignalStrategy`
is the one plumbing of both families (the signal cursor: each row handed to one decision
hook at its date's close; the commission from ``cost_bps``; the recorded book: equity,
cash, returns, fills). `portfolio.PortfolioStrategy` rebalances to target weights at the
next open (hook: `target_weights`); `trading.TradingStrategy` buys all-in, holds or sells
all of one stock at the decision day's close (hook: `decide`, by default a policy of
`storm_bt.trading.policies`, re-exported here). `runner` wires the cerebro for both.
Nothing here imports a model or an optimizer.
"""
import sys

import matplotlib

# backtrader imports pyplot lazily (for plot()): make sure it never needs a display.
if "matplotlib.pyplot" not in sys.modules:
    matplotlib.use("Agg")

from storm_bt.trading.account import Action  # noqa: E402
from storm_bt.trading.policies import BuyAndHold, RLPolicy, ThresholdPolicy  # noqa: E402
from strategies.base import SignalStrategy  # noqa: E402
from strategies.commission import FractionalCommInfo, StockCommInfo, commission_info  # noqa: E402
from strategies.feeds import ArrayFeed, panel_feeds  # noqa: E402
from strategies.portfolio import CASH_RESERVE, PortfolioStrategy  # noqa: E402
from strategies.runner import (BacktestResult, TradingResult, run_portfolio_backtest,  # noqa: E402
                               run_trading_backtest)
from strategies.trading import TradingStrategy  # noqa: E402

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
    "StockCommInfo",
    "ThresholdPolicy",
    "TradingResult",
    "TradingStrategy",
    "commission_info",
    "panel_feeds",
    "run_portfolio_backtest",
    "run_trading_backtest",
]
