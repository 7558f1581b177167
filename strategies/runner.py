"""`run_portfolio_backtest`: a weights table + a `Panel` -> a backtrader run -> `BacktestResult`.

The cerebro: one `ArrayFeed` per ticker of the weights (total-return prices, see
`strategies.feeds`), cheat-on-open (orders decided at the close of t are sized and filled at
the open of t+1, see `strategies.portfolio`), no observers (``stdstats=False``), and
backtrader's SharpeRatio analyzer on daily returns, annualised, risk-free rate 0.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import backtrader as bt
import numpy as np
import pandas as pd

from storm_bt.data.panel import Panel
from storm_bt.errors import StormBtError
from strategies.feeds import panel_feeds
from strategies.portfolio import PortfolioStrategy

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BacktestResult:
    """What a portfolio backtest produced.

    Attributes:
        equity: portfolio value at each day's close, the first day included (= the cash).
        returns: daily simple returns of `equity`, from the second day on.
        turnover: traded value / book value per executed rebalance, by decision date.
        trades: one row per fill: date, ticker, size (negative = sell), price, commission.
        sharpe: backtrader's annualised daily Sharpe ratio (risk-free 0; NaN if undefined).
        cash: cash at each day's close.
    """

    equity: pd.Series
    returns: pd.Series
    turnover: pd.Series
    trades: pd.DataFrame
    sharpe: float
    cash: pd.Series


def run_portfolio_backtest(panel: Panel, weights: pd.DataFrame,
                           start: str | pd.Timestamp | None, end: str | pd.Timestamp | None,
                           cash: float = 1_000_000.0, cost_bps: float = 10.0,
                           strategy_cls: type[PortfolioStrategy] = PortfolioStrategy,
                           **strategy_params) -> BacktestResult:
    """Trade `weights` (rebalance date x ticker) on `panel` over [start, end].

    Every column of `weights` must be a ticker of `panel`; one feed is built per column. A
    row dated t is executed at the open of the first bar after t; rows after `end` are never
    used. Extra keyword arguments go to `strategy_cls` as params.
    """
    if not (isinstance(strategy_cls, type) and issubclass(strategy_cls, PortfolioStrategy)):
        raise StormBtError(f"strategy_cls {strategy_cls!r} must be a subclass of PortfolioStrategy")
    if not isinstance(weights, pd.DataFrame):
        raise StormBtError("weights must be a DataFrame (date x ticker), "
                           f"got {type(weights).__name__}")
    if not np.isfinite(cash) or cash <= 0:
        raise StormBtError(f"cash {cash}: must be a positive number")
    unknown = [str(c) for c in weights.columns if c not in panel.tickers]
    if unknown:
        raise StormBtError(f"weights: column(s) {', '.join(unknown[:10])} are not tickers of "
                           f"{panel.source}; drop them or load their prices")
    tickers = [t for t in panel.tickers if t in weights.columns]
    if not tickers:
        raise StormBtError("weights has no columns: give one column per ticker to trade")

    cerebro = bt.Cerebro(stdstats=False, cheat_on_open=True)
    cerebro.broker.setcash(float(cash))
    for feed in panel_feeds(panel.select(tickers), start, end):
        cerebro.adddata(feed)
    cerebro.addstrategy(strategy_cls, weights=weights, cost_bps=cost_bps, **strategy_params)
    cerebro.addanalyzer(bt.analyzers.SharpeRatio, _name="sharpe", timeframe=bt.TimeFrame.Days,
                        annualize=True, riskfreerate=0.0)
    strategy = cerebro.run()[0]

    sharpe = strategy.analyzers.sharpe.get_analysis().get("sharperatio")
    result = BacktestResult(
        equity=strategy.equity(), returns=strategy.returns(), turnover=strategy.turnover(),
        trades=strategy.trades(), sharpe=float("nan") if sharpe is None else float(sharpe),
        cash=strategy.cash())
    log.info("backtest %s .. %s: %d tickers, %d rebalances, %d fills, final value %.2f",
             result.equity.index[0].date(), result.equity.index[-1].date(), len(tickers),
             len(result.turnover), len(result.trades), result.equity.iloc[-1])
    return result
