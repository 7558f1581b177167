"""`TradingStrategy`: buy all-in / hold / sell all of one stock in backtrader (STORM_SPEC 7).

    signals (date -> number or state vector)  ->  decide(signal, position)  ->  BUY / HOLD / SELL

Timing: at the close of bar t the strategy reads the newest signal dated <= t that it has
not read yet (`SignalStrategy`'s cursor) and calls ``decide(signal, position)``. The
``fill`` param says where the order executes:

    fill="close"      at the same close p_t (backtrader's ``coc``): the paper's
                      market-on-close assumption and the environment's accounting exactly
    fill="next-open"  at the open o_{t+1} of the next bar (backtrader's cheat-on-open: the
                      order is sized in `next_open` with o_{t+1}, as `PortfolioStrategy` does);
                      nothing of t+1 but its open is used, and a next bar on which the stock
                      does not trade drops the order

The account rules are those of `storm_bt.trading.account`, at the fill price p (p_t or
o_{t+1}): a BUY buys n = floor(cash / (p (1 + tc))) whole shares, a SELL sells them all,
long only, commission tc = cost_bps / 10_000 of traded value; BUY when invested and SELL
when flat are HOLDs. The last bar is a valuation day: no decision is taken there (an order
could never fill).

Recorded per bar (by `SignalStrategy`): V_t, the value after the day's trade at its close,
which with ``fill="close"`` is what `storm_bt.trading.env.TradingEnv` calls V_t; `returns()`
is V_t / V_{t-1} - 1 from bar ``fill_lag`` on (0 for close fills, 1 for next-open fills,
whose first bar cannot trade), V_{-1} the initial cash; and the executed action per bar,
on the bar whose price it filled at (t for close fills, t+1 for next-open fills).

The RL environment keeps same-close accounting in training: with ``fill="next-open"`` an
agent trained there trades the test period at the next open, so backtrader's values are no
longer the environment's (every row of the trading table, buy-and-hold included, then
pays the overnight move between the decision and the fill).

The default `decide` calls the ``policy`` param, any ``policy(signal, position) -> Action``
(`storm_bt.trading.policies`: `ThresholdPolicy`, `RLPolicy`, `BuyAndHold`), so one policy
object runs here and in the environment alike. Write your own rule by subclassing
`TradingStrategy` and overriding `decide` (see examples/custom_trading_policy.py).
"""
from __future__ import annotations

import bisect
from typing import Any

import backtrader as bt
import numpy as np
import pandas as pd

from storm_bt.errors import StormBtError
from storm_bt.trading.account import FILLS, Action, shares_to_buy
from strategies.base import SignalStrategy, date_numbers, signal_dates


class TradingStrategy(SignalStrategy):
    """One stock, one decision per signal date; see the module docstring.

    Params:
        signals: a Series (date -> number) or a DataFrame (date x state columns); the row
            dated t is known at the close of t. `decide` receives a float for a Series and a
            float32 array for a DataFrame. None: `decide` is called on every bar with
            signal None (a rule that reads the feed, ``self.data``, itself).
        policy: a callable ``policy(signal, position) -> Action`` used by the default
            `decide`; None means HOLD always.
        cost_bps: commission in basis points of traded value (sets the integer sizing).
        fill: "close" (the decision day's close, default) or "next-open" (the next bar's open).
    """

    params = (("signals", None), ("policy", None), ("cost_bps", 1.0), ("fill", "close"))
    fill_lag = 0
    fractional_shares = False

    def __init__(self) -> None:
        if len(self.datas) != 1:
            raise StormBtError(f"TradingStrategy trades one stock, got {len(self.datas)} feeds")
        if self.p.fill not in FILLS:
            raise StormBtError(f"fill {self.p.fill!r}: choose one of {', '.join(FILLS)}")
        self._every_bar = self.p.signals is None
        self._scalar = True
        super().__init__()
        self.fill_lag = 0 if self.p.fill == "close" else 1
        self._actions: list[int] = []
        #: next-open fills: the action decided at the last close, to execute at this open
        self._pending: Action | None = None
        #: the action filled at this bar's open, recorded when its `next` runs
        self._opened = int(Action.HOLD)

    def start(self) -> None:
        if self.p.fill == "close" and not self.broker.p.coc:
            raise StormBtError(f"{type(self).__name__} fills at the decision day's close: run it "
                               "with cerebro.broker.set_coc(True) (run_trading_backtest does)")
        if self.p.fill == "next-open" and not self.cerebro.p.cheat_on_open:
            raise StormBtError(f"{type(self).__name__}(fill='next-open') fills at the next open: "
                               "run it in bt.Cerebro(cheat_on_open=True) (run_trading_backtest "
                               "does)")
        super().start()

    # ------------------------------------------------------------------ the hook
    def decide(self, signal: Any, position: float) -> Action:
        """The action at today's close from `signal` and the shares held (`position`)."""
        if self.p.policy is None:
            return Action.HOLD
        return self.p.policy(signal, position)

    # ------------------------------------------------------------------ signals
    def signal_table(self, frame: Any) -> tuple[list[float], np.ndarray]:
        """(backtrader date numbers, rows (N, d)): a Series as float64, a DataFrame as float32."""
        if frame is None:
            return [], np.empty((0, 1))
        if not isinstance(frame, (pd.Series, pd.DataFrame)):
            raise StormBtError("param 'signals' must be a Series (date -> number) or a DataFrame "
                               f"(date x state columns), got {type(frame).__name__}")
        dates = signal_dates(frame.index, "signals")
        self._scalar = isinstance(frame, pd.Series)
        try:
            rows = np.asarray(frame.to_numpy(dtype=np.float64 if self._scalar else np.float32))
        except (TypeError, ValueError) as exc:
            raise StormBtError(f"param 'signals': values must be numbers ({exc})") from None
        return date_numbers(dates), rows.reshape(len(dates), -1)

    def signal_row(self, i: int, date: pd.Timestamp) -> float | np.ndarray:
        row = self._signal_values[i]
        return float(row[0]) if self._scalar else row

    # ------------------------------------------------------------------ lifecycle
    def next(self) -> None:
        self._actions.append(self._opened)
        self._opened = int(Action.HOLD)
        super().next()
        if self._every_bar:
            self.on_signal(self.bar_date(), None)

    def on_signal(self, date: pd.Timestamp, signal: Any) -> None:
        data = self.datas[0]
        last_bar = len(data) >= data.buflen()
        if last_bar or not self._tradable(float(data.close[0])):
            return
        action = Action(int(self.decide(signal, self.position.size)))
        if self.p.fill == "close":
            self._execute(action, float(data.close[0]))
        else:
            self._pending = action

    def next_open(self) -> None:
        if self._pending is None:
            return
        action, self._pending = self._pending, None
        price = float(self.datas[0].open[0])
        if self._tradable(price):
            self._execute(action, price, at_open=True)

    def _tradable(self, price: float) -> bool:
        """Whether the current bar can fill an order at `price`."""
        data = self.datas[0]
        tradable = float(data.tradable[0]) > 0 if hasattr(data.lines, "tradable") else True
        return tradable and np.isfinite(price) and price > 0

    def _execute(self, action: Action, price: float, at_open: bool = False) -> None:
        """Submit the order of `action` at `price` (the account rules) and record it."""
        shares = self.position.size
        order = None
        if action is Action.BUY and shares == 0:
            n = shares_to_buy(self.broker.getcash(), price, self.cost)
            if n > 0:
                order = self.buy(size=n)
        elif action is Action.SELL and shares > 0:
            order = self.sell(size=shares)
        if order is None:
            return
        if at_open:  # this bar's `next` has not run yet: it records the action
            self._opened = int(action)
        else:
            self._actions[-1] = int(action)

    def notify_order(self, order: bt.Order) -> None:
        super().notify_order(order)
        if order.status in (order.Margin, order.Rejected, order.Canceled, order.Expired):
            bar = bisect.bisect_left(self._bar_dt, order.created.dt)
            if bar < len(self._actions):
                self._actions[bar] = int(Action.HOLD)
            else:  # a next-open order refused before its bar's `next`
                self._opened = int(Action.HOLD)

    # ------------------------------------------------------------------ results
    def actions(self) -> pd.Series:
        """The executed action per bar (0 SELL, 1 HOLD, 2 BUY)."""
        return pd.Series(self._actions, index=self._bar_index(), name="action", dtype=int)
