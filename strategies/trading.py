"""`TradingStrategy`: buy all-in / hold / sell all of one stock in backtrader (STORM_SPEC 7).

    signals (date -> number or state vector)  ->  decide(signal, position)  ->  BUY / HOLD / SELL

Timing (cheat-on-close, the environment's accounting exactly): at the close of bar t the
strategy reads the newest signal dated <= t that it has not read yet (`SignalStrategy`'s
cursor) and calls ``decide(signal, position)``; the order executes at the same close p_t
(backtrader's ``coc``). The account rules are those of `storm_bt.trading.account`: a BUY
buys n = floor(cash / (p (1 + tc))) whole shares, a SELL sells them all, long only,
commission tc = cost_bps / 10_000 of traded value; BUY when invested and SELL when flat are
HOLDs. The last bar is a valuation day: no decision is taken there (an order could never
fill).

Recorded per bar (by `SignalStrategy`): V_t, the value after the day's trade at p_t, which
is what `storm_bt.trading.env.TradingEnv` calls V_t; `returns()` is V_t / V_{t-1} - 1 on
every bar (``fill_lag = 0``), V_{-1} the initial cash; and the executed action per bar.

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
from storm_bt.trading.account import Action, shares_to_buy
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
    """

    params = (("signals", None), ("policy", None), ("cost_bps", 1.0))
    fill_lag = 0
    fractional_shares = False

    def __init__(self) -> None:
        if len(self.datas) != 1:
            raise StormBtError(f"TradingStrategy trades one stock, got {len(self.datas)} feeds")
        self._every_bar = self.p.signals is None
        self._scalar = True
        super().__init__()
        self._actions: list[int] = []

    def start(self) -> None:
        if not self.broker.p.coc:
            raise StormBtError(f"{type(self).__name__} fills at the decision day's close: run it "
                               "with cerebro.broker.set_coc(True) (run_trading_backtest does)")
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
        self._actions.append(int(Action.HOLD))
        super().next()
        if self._every_bar:
            self.on_signal(self.bar_date(), None)

    def on_signal(self, date: pd.Timestamp, signal: Any) -> None:
        data = self.datas[0]
        price = float(data.close[0])
        tradable = float(data.tradable[0]) > 0 if hasattr(data.lines, "tradable") else True
        last_bar = len(data) >= data.buflen()
        if last_bar or not tradable or not np.isfinite(price) or price <= 0:
            return
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
            self._actions[-1] = int(action)

    def notify_order(self, order: bt.Order) -> None:
        super().notify_order(order)
        if order.status in (order.Margin, order.Rejected, order.Canceled, order.Expired):
            bar = bisect.bisect_left(self._bar_dt, order.created.dt)
            if bar < len(self._actions):
                self._actions[bar] = int(Action.HOLD)

    # ------------------------------------------------------------------ results
    def actions(self) -> pd.Series:
        """The executed action per bar (0 SELL, 1 HOLD, 2 BUY)."""
        return pd.Series(self._actions, index=self._bar_index(), name="action", dtype=int)
