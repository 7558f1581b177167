"""The runners: a `Panel` + signals + a strategy class -> a backtrader run -> a result.

    run_portfolio_backtest   weights (date x ticker)   -> PortfolioStrategy -> BacktestResult
    run_trading_backtest     one stock's signals       -> TradingStrategy   -> TradingResult

Both share one set-up (`_cerebro`: the checks, the cash, one `ArrayFeed` per ticker on
total-return prices, see `strategies.feeds`, no observers) and pass ``cost_bps`` to the
strategy, which installs the commission itself (`SignalStrategy.start`). The portfolio
cerebro is cheat-on-open (orders decided at the close of t fill at the open of t+1) and
carries backtrader's SharpeRatio analyzer on daily returns, annualised, risk-free rate 0;
the trading cerebro is cheat-on-close (orders fill at the decision day's close), or
cheat-on-open with ``fill="next-open"`` (orders fill at the next bar's open).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable

import backtrader as bt
import numpy as np
import pandas as pd

from storm_bt.data.panel import Panel
from storm_bt.errors import StormBtError
from storm_bt.trading.account import Action
from strategies.base import SignalStrategy
from strategies.feeds import panel_feeds
from strategies.portfolio import PortfolioStrategy
from strategies.trading import FILLS, TradingStrategy

log = logging.getLogger(__name__)

Date = str | pd.Timestamp | None


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


@dataclass(frozen=True)
class TradingResult:
    """What a single-stock trading backtest produced.

    Attributes:
        equity: V_t after each day's trade, at its close, on every bar.
        returns: r_t = V_t / V_{t-1} - 1, V_{-1} = `cash`, on every bar.
        values: [V_{-1}, V_0, ..., V_{N-1}] as an array (for `reports.trading_metrics`).
        actions: executed action per bar (0 SELL, 1 HOLD, 2 BUY).
        trades: fills (date = the fill day: the decision day for close fills, the next bar
            for next-open fills; ticker, size, price, commission).
        cash: the initial cash V_{-1}.
    """

    equity: pd.Series
    returns: pd.Series
    values: np.ndarray
    actions: pd.Series
    trades: pd.DataFrame
    cash: float


def _cerebro(panel: Panel, tickers: list[str], start: Date, end: Date, cash: float,
             strategy_cls: type, family: type[SignalStrategy], **cerebro_kwargs) -> bt.Cerebro:
    """A cerebro with `cash` and one feed per ticker over [start, end], after the checks
    both runners share."""
    if not (isinstance(strategy_cls, type) and issubclass(strategy_cls, family)):
        raise StormBtError(f"strategy_cls {strategy_cls!r} must be a subclass of "
                           f"{family.__name__}")
    if not np.isfinite(cash) or cash <= 0:
        raise StormBtError(f"cash {cash}: must be a positive number")
    cerebro = bt.Cerebro(stdstats=False, **cerebro_kwargs)
    cerebro.broker.setcash(float(cash))
    for feed in panel_feeds(panel.select(tickers), start, end):
        cerebro.adddata(feed)
    return cerebro


def run_portfolio_backtest(panel: Panel, weights: pd.DataFrame, start: Date, end: Date,
                           cash: float = 1_000_000.0, cost_bps: float = 10.0,
                           strategy_cls: type[PortfolioStrategy] = PortfolioStrategy,
                           **strategy_params) -> BacktestResult:
    """Trade `weights` (rebalance date x ticker) on `panel` over [start, end].

    Every column of `weights` must be a ticker of `panel`; one feed is built per column. A
    row dated t is executed at the open of the first bar after t; rows after `end` are never
    used. Extra keyword arguments go to `strategy_cls` as params.
    """
    if not isinstance(weights, pd.DataFrame):
        raise StormBtError("weights must be a DataFrame (date x ticker), "
                           f"got {type(weights).__name__}")
    unknown = [str(c) for c in weights.columns if c not in panel.tickers]
    if unknown:
        raise StormBtError(f"weights: column(s) {', '.join(unknown[:10])} are not tickers of "
                           f"{panel.source}; drop them or load their prices")
    tickers = [t for t in panel.tickers if t in weights.columns]
    if not tickers:
        raise StormBtError("weights has no columns: give one column per ticker to trade")
    cerebro = _cerebro(panel, tickers, start, end, cash, strategy_cls, PortfolioStrategy,
                       cheat_on_open=True)
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


def run_trading_backtest(panel: Panel, ticker: str, signals: pd.Series | pd.DataFrame | None,
                         policy: Callable[[Any, float], Action] | None, start: Date, end: Date,
                         cash: float = 1e5, cost_bps: float = 1.0,
                         strategy_cls: type[TradingStrategy] = TradingStrategy,
                         fill: str = "close", **strategy_params) -> TradingResult:
    """Trade `ticker` of `panel` over [start, end] with `policy` on `signals`.

    The feed is the ticker's total-return prices: orders execute at the adjusted close of
    the decision day (``fill="close"``) or at the adjusted open of the next bar
    (``fill="next-open"``; see `strategies.trading`). Extra keyword arguments go to
    `strategy_cls` as params.
    """
    if fill not in FILLS:
        raise StormBtError(f"--fill {fill!r}: choose one of {', '.join(FILLS)}")
    cerebro = _cerebro(panel, [ticker], start, end, cash, strategy_cls, TradingStrategy,
                       cheat_on_open=fill == "next-open")
    cerebro.broker.set_coc(fill == "close")
    cerebro.addstrategy(strategy_cls, signals=signals, policy=policy, cost_bps=cost_bps,
                        fill=fill, **strategy_params)
    strategy = cerebro.run()[0]
    equity = strategy.equity()
    result = TradingResult(
        equity=equity, returns=strategy.returns(),
        values=np.concatenate([[float(cash)], equity.to_numpy()]),
        actions=strategy.actions(), trades=strategy.trades(), cash=float(cash))
    if len(equity):
        log.debug("%s %s .. %s: %d fills, final value %.2f", ticker, equity.index[0].date(),
                  equity.index[-1].date(), len(result.trades), equity.iloc[-1])
    return result
