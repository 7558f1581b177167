"""Trading policies: ``policy(signal, position) -> Action``, one decision per day.

A policy maps what is known at the close of day t (the signal: a predicted next-day return
or a state vector) and the shares held to one of the account's actions (SELL, HOLD, BUY;
`storm_bt.trading.account`). Policies are plain callables with no engine in them, so the
same object runs in the gymnasium environment (`storm_bt.trading.env.rollout`) and in
backtrader (`strategies.trading.TradingStrategy`):

    BuyAndHold        BUY on the first decision, never sell
    ThresholdPolicy   BUY if s_t > thr, SELL if s_t < -thr, else HOLD (s_t: predicted return)
    RLPolicy          a trained agent's greedy action on obs = builder(state_t, position)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from storm_bt.trading.account import (Action, ObservationBuilder, continuous_to_action,
                                      discrete_to_action)

#: The policy protocol: (signal known at the close of t, shares held) -> the action at t.
Policy = Callable[[Any, float], Action]


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
        self.action_map = action_map or discrete_to_action

    @classmethod
    def continuous(cls, model: Any, builder: ObservationBuilder | None = None) -> "RLPolicy":
        """For a model acting in [-1, 1] (three equal bins, see `continuous_to_action`)."""
        return cls(model, builder, continuous_to_action)

    def __call__(self, signal: Any, position: float) -> Action:
        obs = self.builder(np.asarray(signal, dtype=np.float32), position)
        action, _ = self.model.predict(obs, deterministic=True)
        return self.action_map(action)
