"""`TradingEnv`: the gymnasium environment of STORM_SPEC section 7 (single stock, buy/hold/sell).

Inputs: a state array X (N days, d) and the stock's adjusted closes p_0..p_{N-1} on the same
days (a row of X dated t holds only what is known at the close of t).

    reset():    t = t0 (0, or uniform in [0, 3 (N // 4)] when ``random_start``),
                cash = V_{-1} = initial cash, shares = 0; returns obs(t0)
    step(a):    execute a in {0 SELL, 1 HOLD, 2 BUY} at p_t (`storm_bt.trading.account`);
                V_t = cash_t + shares_t p_t                (after the trade, at p_t)
                r_t = (V_t - V_{t-1}) / V_{t-1}
                then t <- t + 1 and obs(t) is returned

So the cost of an action at t is in r_t and its price effect in r_{t+1}, as in the official
code. obs(t) = X[t], or [X[t], 1{shares > 0}] with ``with_position`` (D23).

Where this differs from the official script (documented choices):
- D12 fixed: the price of day t is the scalar ``prices[t]`` (the official ``reset`` crashes).
- The episode runs to the last day N-1, which is a valuation day: its action is not
  executed (HOLD), because backtrader cannot fill an order after its last bar, and the step
  ends the episode (``terminated``). Every price move p_{t-1} -> p_t of the period is thus
  in some reward, and the equity [V_{-1}, V_{t0}, ..., V_{N-1}] is exactly the one
  `strategies.trading.TradingStrategy` reports for the same actions. The official loop
  stops 32 days before the period end; here the whole period is traded.

`rollout(env, policy)` runs a `policy(signal, position) -> Action` (`storm_bt.trading.policies`,
the same objects `strategies.trading` executes in backtrader) through the environment and
returns the values.
"""
from __future__ import annotations

from typing import Any, Callable

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from storm_bt.errors import StormBtError
from storm_bt.trading.account import Account, Action, ObservationBuilder


class TradingEnv(gym.Env):
    """Buy all-in / sell all / hold one stock; reward = one-day change of the book's value.

    Args:
        states: (N, d) state per day (the policy input without the position); (N,) is
            one number per day.
        prices: (N,) adjusted close per day, positive and finite.
        cash: initial cash V_{-1}.
        cost: commission rate on traded value (1e-4 = 1 bp).
        random_start: draw the first day uniformly in [0, 3 (N // 4)] (training); else 0.
        with_position: append the position flag 1{shares > 0} to the observation (D23).
    """

    metadata = {"render_modes": []}

    def __init__(self, states: np.ndarray, prices: np.ndarray, cash: float = 1e5,
                 cost: float = 1e-4, random_start: bool = False,
                 with_position: bool = False) -> None:
        super().__init__()
        states = np.asarray(states, dtype=np.float32)
        prices = np.asarray(prices, dtype=np.float64).ravel()
        if states.ndim == 1:  # one number per day
            states = states[:, None]
        if states.ndim != 2 or len(states) != len(prices):
            raise StormBtError(f"TradingEnv: states must be (N, d) with N = len(prices) = "
                               f"{len(prices)}, got {states.shape}")
        if len(prices) < 2:
            raise StormBtError(f"TradingEnv: need at least 2 days, got {len(prices)}")
        if not (np.isfinite(prices).all() and (prices > 0).all()):
            bad = int(np.flatnonzero(~(np.isfinite(prices) & (prices > 0)))[0])
            raise StormBtError(f"TradingEnv: price on day {bad} is {prices[bad]}; prices must be "
                               "positive and finite (drop the days the stock has no row)")
        if not cash > 0:
            raise StormBtError(f"TradingEnv: initial cash {cash} must be positive")
        if cost < 0:
            raise StormBtError(f"TradingEnv: cost {cost} must be >= 0")
        self.states = states
        #: the observations' state part, cleaned once (`ObservationBuilder.clean`) rather
        #: than on every step: the training loop's hot path
        self._clean_states = ObservationBuilder.clean(states)
        self.prices = prices
        self.initial_cash = float(cash)
        self.cost = float(cost)
        self.random_start = bool(random_start)
        self.builder = ObservationBuilder(with_position)
        dim = self.builder.size(states.shape[1])
        self.observation_space = spaces.Box(-np.inf, np.inf, shape=(dim,), dtype=np.float32)
        self.action_space = spaces.Discrete(3)
        self.account = Account(self.initial_cash, self.cost)
        self.t = 0
        self.start = 0
        self.last_value = self.initial_cash
        #: post-trade values V_{t0}, ..., V_t of the current episode
        self.values: list[float] = []
        #: executed actions of the current episode
        self.executed: list[Action] = []

    @property
    def n_days(self) -> int:
        return len(self.prices)

    def _obs(self) -> np.ndarray:
        return self.builder.with_flag(self._clean_states[self.t], self.account.shares)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if options and "start" in options:
            start = int(options["start"])
            if not 0 <= start < self.n_days:
                raise StormBtError(f"TradingEnv.reset: start {start} outside 0..{self.n_days - 1}")
        elif self.random_start:
            start = int(self.np_random.integers(0, 3 * (self.n_days // 4) + 1))
            start = min(start, self.n_days - 2)
        else:
            start = 0
        self.start = self.t = start
        self.account = Account(self.initial_cash, self.cost)
        self.last_value = self.initial_cash
        self.values, self.executed = [], []
        return self._obs(), {"day": self.t}

    def step(self, action) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        price = float(self.prices[self.t])
        last_day = self.t == self.n_days - 1
        wanted = Action(int(np.asarray(action).ravel()[0]))
        executed, commission = self.account.apply(Action.HOLD if last_day else wanted, price)
        value = self.account.value(price)
        reward = (value - self.last_value) / self.last_value
        self.last_value = value
        self.values.append(value)
        self.executed.append(executed)
        info = {"day": self.t, "price": price, "value": value, "cash": self.account.cash,
                "shares": self.account.shares, "executed": int(executed),
                "commission": commission,
                "total_profit": (value / self.initial_cash - 1.0) * 100.0}
        if not last_day:
            self.t += 1
        return self._obs(), float(reward), last_day, False, info


def rollout(env: TradingEnv, policy: Callable[[np.ndarray, int], Action | int],
            start: int = 0) -> np.ndarray:
    """Run `policy(state_t, shares_t)` from day `start` to the end; returns the values
    [V_{-1} = cash, V_start, ..., V_{N-1}] (length N - start + 1)."""
    env.reset(options={"start": start})
    done = False
    while not done:
        action = policy(env.states[env.t], env.account.shares)
        _, _, done, _, _ = env.step(int(action))
    return np.array([env.initial_cash, *env.values])
