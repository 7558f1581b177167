"""`TradingStrategy`: buy all-in / hold / sell all of one stock in backtrader (STORM_SPEC 7).

    signals (date -> number or state vector)  ->  decide(signal, position)  ->  BUY / HOLD / SELL

Timing (cheat-on-close, the environment's accounting exactly): at the close of bar t the
strategy reads the newest signal dated <= t that it has not read yet and calls
``decide(signal, position)``; the order executes at the same close p_t (backtrader's
``coc``). The account rules are those of `storm_bt.trading.account`: a BUY buys
n = floor(cash / (p (1 + tc))) whole shares, a SELL sells them all, long only, commission
tc = cost_bps / 10_000 of traded value; BUY when invested and SELL when flat are HOLDs. The
last bar is a valuation day: no decision is taken there (an order could never fill).

Recorded per bar: the value after the day's trade at p_t, V_t = (value at the close) -
(commission of the order decided that day), which is what `storm_bt.trading.env.TradingEnv`
calls V_t; `returns()` is V_t / V_{t-1} - 1 with V_{-1} the initial cash.

Policies are callables ``policy(signal, position) -> Action`` usable in the strategy and in
the environment alike: `ThresholdPolicy`, `RLPolicy`, `BuyAndHold`. Write your own policy
by subclassing `TradingStrategy` and overriding `decide` (see examples/).
"""
from __future__ import annotations

import bisect
import logging
from dataclasses import dataclass
from typing import Any, Callable

import backtrader as bt
import numpy as np
import pandas as pd

from storm_bt.data.panel import Panel
from storm_bt.errors import StormBtError
from storm_bt.trading.account import (Action, ObservationBuilder, continuous_to_action,
                                      shares_to_buy)
from strategies.base import _to_date, _to_timestamps, signal_dates
from strategies.feeds import panel_feeds

log = logging.getLogger(__name__)

__all__ = ["Action", "BuyAndHold", "RLPolicy", "ThresholdPolicy", "TradingResult",
           "TradingStrategy", "run_trading_backtest"]


# ---------------------------------------------------------------------------- policies
class BuyAndHold:
    """Buy on the first decision, never sell."""

    def __call__(self, signal: Any, position: float) -> Action:
        return Action.BUY

    def __repr__(self) -> str:
        return "BuyAndHold()"


@dataclass(frozen=True)
class ThresholdPolicy:
    """On a predicted next-day return s: BUY if s > threshold, SELL if s < -threshold, else
    HOLD (a NaN prediction is a HOLD)."""

    threshold: float = 0.0

    def __call__(self, signal: Any, position: float) -> Action:
        s = float(np.asarray(signal, dtype=np.float64).ravel()[0])
        if s > self.threshold:
            return Action.BUY
        if s < -self.threshold:
            return Action.SELL
        return Action.HOLD


class RLPolicy:
    """A trained stable-baselines3 model as a policy: obs = builder(state, position),
    action = model.predict(obs, deterministic=True), mapped to an `Action` by `action_map`
    (`continuous_to_action` for a continuous-action model such as SAC).

    Any object with ``predict(obs, deterministic=True) -> (action, state)`` works as `model`.
    """

    def __init__(self, model: Any, builder: ObservationBuilder | None = None,
                 action_map: Callable[[Any], Action] | None = None) -> None:
        self.model = model
        self.builder = builder or ObservationBuilder()
        self.action_map = action_map or (lambda a: Action(int(np.asarray(a).ravel()[0])))

    @classmethod
    def continuous(cls, model: Any, builder: ObservationBuilder | None = None) -> "RLPolicy":
        """For a model acting in [-1, 1] (three equal bins, see `continuous_to_action`)."""
        return cls(model, builder, continuous_to_action)

    def __call__(self, signal: Any, position: float) -> Action:
        obs = self.builder(np.asarray(signal, dtype=np.float32), position)
        action, _ = self.model.predict(obs, deterministic=True)
        return self.action_map(action)


# ---------------------------------------------------------------------------- strategy
class TradingStrategy(bt.Strategy):
    """One stock, one decision per signal date; see the module docstring.

    Params:
        signals: a Series (date -> number) or a DataFrame (date x state columns); the row
            dated t is known at the close of t. `decide` receives a float for a Series and a
            float32 array for a DataFrame. None: `decide` is called on every bar with
            signal None (a rule that reads the feed, ``self.data``, itself).
        policy: a callable ``policy(signal, position) -> Action`` used by the default
            `decide`; None means HOLD always.
        cost_bps: commission in basis points of traded value (sets the integer sizing).
    """

    params = (("signals", None), ("policy", None), ("cost_bps", 1.0))

    def __init__(self) -> None:
        if len(self.datas) != 1:
            raise StormBtError(f"TradingStrategy trades one stock, got {len(self.datas)} feeds")
        self.cost = float(self.p.cost_bps) / 1e4
        self._every_bar = self.p.signals is None
        self._dates, self._rows, self._scalar = _signal_rows(self.p.signals)
        self._unread = 0
        self._bar_dt: list[float] = []
        self._bar_value: list[float] = []
        self._bar_comm: list[float] = []
        self._actions: list[int] = []
        self._fills: list[tuple] = []
        self._pending_bar: dict[int, int] = {}  # order ref -> bar index it was decided on
        #: orders the broker did not fill, as (date, status)
        self.unfilled: list[tuple[pd.Timestamp, str]] = []

    # ------------------------------------------------------------------ the hook
    def decide(self, signal: Any, position: float) -> Action:
        """The action at today's close from `signal` and the shares held (`position`)."""
        if self.p.policy is None:
            return Action.HOLD
        return self.p.policy(signal, position)

    # ------------------------------------------------------------------ lifecycle
    def next(self) -> None:
        data = self.datas[0]
        bar = len(self._bar_dt)
        self._bar_dt.append(self.datetime[0])
        self._bar_value.append(self.broker.getvalue())
        self._bar_comm.append(0.0)
        self._actions.append(int(Action.HOLD))
        if self._every_bar:
            newest = None
        else:
            newest = bisect.bisect_right(self._dates, self.datetime[0]) - 1
            if newest < self._unread:
                return
            self._unread = newest + 1
        last_bar = len(data) >= data.buflen()
        price = float(data.close[0])
        tradable = float(data.tradable[0]) > 0 if hasattr(data.lines, "tradable") else True
        if last_bar or not tradable or not np.isfinite(price) or price <= 0:
            return
        if newest is None:
            signal = None
        else:
            signal = self._rows[newest]
            signal = float(signal[0]) if self._scalar else signal
        shares = self.position.size
        action = Action(int(self.decide(signal, shares)))
        order = None
        if action is Action.BUY and shares == 0:
            n = shares_to_buy(self.broker.getcash(), price, self.cost)
            if n > 0:
                order = self.buy(size=n)
        elif action is Action.SELL and shares > 0:
            order = self.sell(size=shares)
        if order is not None:
            self._pending_bar[order.ref] = bar
            self._actions[bar] = int(action)

    def notify_order(self, order: bt.Order) -> None:
        bar = self._pending_bar.get(order.ref)
        if order.status == order.Completed:
            ex = order.executed
            self._fills.append((ex.dt, ex.size, ex.price, ex.comm))
            if bar is not None:
                self._bar_comm[bar] += ex.comm
        elif order.status in (order.Margin, order.Rejected, order.Canceled, order.Expired):
            status = order.getstatusname()
            date = _to_date(order.created.dt)
            self.unfilled.append((date, status))
            if bar is not None:
                self._actions[bar] = int(Action.HOLD)
            log.warning("%s: %s order of %d shares not filled (%s)", date.date(),
                        "buy" if order.isbuy() else "sell", abs(order.created.size), status)

    # ------------------------------------------------------------------ results
    def equity(self) -> pd.Series:
        """V_t: the value after each day's trade, at that day's close."""
        values = np.asarray(self._bar_value) - np.asarray(self._bar_comm)
        return pd.Series(values, index=_to_timestamps(self._bar_dt).rename("date"),
                         name="equity", dtype=float)

    def returns(self) -> pd.Series:
        """r_t = V_t / V_{t-1} - 1 on every bar, V_{-1} = the initial cash."""
        v = self.equity()
        prev = np.concatenate([[self.broker.startingcash], v.to_numpy()[:-1]])
        return pd.Series(v.to_numpy() / prev - 1.0, index=v.index, name="returns")

    def actions(self) -> pd.Series:
        """The executed action per bar (0 SELL, 1 HOLD, 2 BUY)."""
        return pd.Series(self._actions, index=_to_timestamps(self._bar_dt).rename("date"),
                         name="action", dtype=int)

    def trades(self) -> pd.DataFrame:
        """Every fill: date (the decision day), size (negative = sell), price, commission."""
        frame = pd.DataFrame(self._fills, columns=["date", "size", "price", "commission"])
        frame["date"] = _to_timestamps([f[0] for f in self._fills])
        return frame.astype({"size": float, "price": float, "commission": float})


def _signal_rows(signals) -> tuple[list[float], np.ndarray, bool]:
    """(backtrader date numbers, rows (N, d) float, whether the signal is a scalar)."""
    if signals is None:
        return [], np.empty((0, 1)), True
    if not isinstance(signals, (pd.Series, pd.DataFrame)):
        raise StormBtError("param 'signals' must be a Series (date -> number) or a DataFrame "
                           f"(date x state columns), got {type(signals).__name__}")
    dates = signal_dates(signals.index, "signals")
    scalar = isinstance(signals, pd.Series)
    try:
        rows = np.asarray(signals.to_numpy(dtype=np.float64 if scalar else np.float32))
    except (TypeError, ValueError) as exc:
        raise StormBtError(f"param 'signals': values must be numbers ({exc})") from None
    rows = rows.reshape(len(dates), -1)
    return [bt.date2num(d) for d in dates.to_pydatetime()], rows, scalar


# ---------------------------------------------------------------------------- runner
@dataclass(frozen=True)
class TradingResult:
    """What a single-stock trading backtest produced.

    Attributes:
        equity: V_t after each day's trade, at its close, on every bar.
        returns: r_t = V_t / V_{t-1} - 1, V_{-1} = `cash`.
        values: [V_{-1}, V_0, ..., V_{N-1}] as an array (for `reports.trading_metrics`).
        actions: executed action per bar (0 SELL, 1 HOLD, 2 BUY).
        trades: fills (date, size, price, commission).
        cash: the initial cash V_{-1}.
    """

    equity: pd.Series
    returns: pd.Series
    values: np.ndarray
    actions: pd.Series
    trades: pd.DataFrame
    cash: float


def run_trading_backtest(panel: Panel, ticker: str, signals: pd.Series | pd.DataFrame | None,
                         policy: Callable[[Any, float], Action] | None,
                         start: str | pd.Timestamp | None, end: str | pd.Timestamp | None,
                         cash: float = 1e5, cost_bps: float = 1.0,
                         strategy_cls: type[TradingStrategy] = TradingStrategy,
                         **strategy_params) -> TradingResult:
    """Trade `ticker` of `panel` over [start, end] with `policy` on `signals`.

    The feed is the ticker's total-return prices (`strategies.feeds`): orders execute at
    the adjusted close of the decision day. Extra keyword arguments go to `strategy_cls`.
    """
    if not (isinstance(strategy_cls, type) and issubclass(strategy_cls, TradingStrategy)):
        raise StormBtError(f"strategy_cls {strategy_cls!r} must be a subclass of TradingStrategy")
    if not np.isfinite(cash) or cash <= 0:
        raise StormBtError(f"cash {cash}: must be a positive number")
    if not np.isfinite(cost_bps) or cost_bps < 0:
        raise StormBtError(f"cost_bps {cost_bps}: must be >= 0")
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.broker.setcash(float(cash))
    cerebro.broker.set_coc(True)
    cerebro.broker.setcommission(commission=cost_bps / 1e4, commtype=bt.CommInfoBase.COMM_PERC,
                                 percabs=True, stocklike=True)
    (feed,) = panel_feeds(panel.select([ticker]), start, end)
    cerebro.adddata(feed)
    cerebro.addstrategy(strategy_cls, signals=signals, policy=policy, cost_bps=cost_bps,
                        **strategy_params)
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
