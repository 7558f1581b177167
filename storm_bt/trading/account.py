"""The single-stock trading account of STORM_SPEC section 7: buy all-in, sell all, hold.

One stock, price p_t (its adjusted close on day t), integer shares, long only, no
leverage, a commission rate tc on traded value (1 bp = 1e-4):

    BUY   n = floor(cash / (p (1 + tc)))            cash <- cash - n p - n p tc,  shares <- n
    SELL  all n shares                               cash <- cash + n p - n p tc,  shares <- 0
    HOLD  nothing

BUY when already invested, and SELL when flat, are HOLDs (as is a BUY that cannot afford
one share). The value is V_t = cash_t + shares_t p_t, measured after the day's trade at the
same price p_t, so a trade changes V_t only by its commission.

The cash is updated in two subtractions (traded value, then commission) as backtrader's
broker does, so the two engines agree to the last bits. This module is shared by the
gymnasium environment (`storm_bt.trading.env`), the policies (`storm_bt.trading.policies`)
and the backtrader strategy (`strategies.trading`), and knows none of them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from enum import IntEnum

import numpy as np


#: Where a backtest fills the day's order: at the decision day's close (the paper's
#: market-on-close, the environment's accounting) or at the next bar's open
#: (`strategies.trading.TradingStrategy`).
FILLS: tuple[str, ...] = ("close", "next-open")


class Action(IntEnum):
    """The three actions; the integer is the environment's discrete action."""

    SELL = 0
    HOLD = 1
    BUY = 2


def shares_to_buy(cash: float, price: float, cost: float) -> int:
    """n = floor(cash / (p (1 + tc))): the most whole shares `cash` pays for, commission included.

    Guarded against floating rounding: n p + n p tc never exceeds `cash`. 0 for a price that
    is not a positive finite number.
    """
    if not (math.isfinite(price) and price > 0.0) or not cash > 0.0:
        return 0
    n = math.floor(cash / (price * (1.0 + cost)))
    while n > 0 and n * price + n * price * cost > cash:
        n -= 1
    return max(int(n), 0)


@dataclass
class Account:
    """Cash and whole shares of one stock; `apply` executes an action at a price."""

    cash: float
    cost: float = 1e-4
    shares: int = 0

    def value(self, price: float) -> float:
        """V = cash + shares x price (a flat book is worth its cash whatever the price)."""
        return self.cash + self.shares * price if self.shares else self.cash

    def apply(self, action: Action | int, price: float) -> tuple[Action, float]:
        """Execute `action` at `price`; returns (the action actually executed, commission)."""
        action = Action(int(action))
        if action is Action.BUY and self.shares == 0:
            n = shares_to_buy(self.cash, price, self.cost)
            if n > 0:
                traded = n * price
                commission = traded * self.cost
                self.cash = self.cash - traded - commission
                self.shares = n
                return Action.BUY, commission
        elif action is Action.SELL and self.shares > 0:
            traded = self.shares * price
            commission = traded * self.cost
            self.cash = self.cash + traded - commission
            self.shares = 0
            return Action.SELL, commission
        return Action.HOLD, 0.0


@dataclass(frozen=True)
class ObservationBuilder:
    """The policy input for one day: the state vector, optionally with the position (D23).

    obs = state                          (position-blind, the official code)
    obs = [state, 1{shares > 0}]         (with_position=True)

    NaN/inf entries of the state become 0. The same builder is used by the environment in
    training and by `storm_bt.trading.policies.RLPolicy` in backtrader, so both see the same input.
    """

    with_position: bool = False

    def size(self, state_dim: int) -> int:
        return state_dim + int(self.with_position)

    def __call__(self, state: np.ndarray, shares: float) -> np.ndarray:
        return self.with_flag(self.clean(np.asarray(state, dtype=np.float32).ravel()), shares)

    @staticmethod
    def clean(states: np.ndarray) -> np.ndarray:
        """States (a row, or all days at once) as float32 with NaN/inf set to 0."""
        return np.nan_to_num(np.asarray(states, dtype=np.float32), nan=0.0, posinf=0.0,
                             neginf=0.0)

    def with_flag(self, clean_state: np.ndarray, shares: float) -> np.ndarray:
        """A `clean` state row as the observation (a new array; the flag appended with
        ``with_position``)."""
        if not self.with_position:
            return clean_state.copy()
        return np.concatenate([clean_state, np.array([1.0 if shares > 0 else 0.0],
                                                     dtype=np.float32)])


def continuous_to_action(value: float | np.ndarray) -> Action:
    """A continuous action a in [-1, 1] (SAC) as one of the three: a < -1/3 SELL, a > 1/3
    BUY, else HOLD (three equal bins)."""
    a = float(np.asarray(value, dtype=np.float64).ravel()[0])
    if a < -1.0 / 3.0:
        return Action.SELL
    if a > 1.0 / 3.0:
        return Action.BUY
    return Action.HOLD


def discrete_to_action(value: int | np.ndarray) -> Action:
    """A discrete action (0, 1, 2; PPO, DQN), possibly in an array, as an `Action`."""
    return Action(int(np.asarray(value).ravel()[0]))
