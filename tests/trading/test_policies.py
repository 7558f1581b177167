"""The policies of the policy stage: decisions by hand, the same object in the environment, and
no backtrader anywhere in storm_bt.trading."""
from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np

from storm_bt.trading.account import Action, ObservationBuilder, discrete_to_action
from storm_bt.trading.env import TradingEnv, rollout
from storm_bt.trading.policies import BuyAndHold, RLPolicy, ThresholdPolicy


def test_threshold_policy_buys_above_sells_below_and_holds_inside_the_band():
    policy = ThresholdPolicy(0.01)
    assert policy(0.011, 0) is Action.BUY
    assert policy(np.array([-0.02], dtype=np.float32), 10) is Action.SELL
    for inside in (0.01, -0.01, 0.0, 0.005):  # the band's edges are holds
        assert policy(inside, 0) is Action.HOLD
    assert policy(float("nan"), 0) is Action.HOLD
    assert ThresholdPolicy()(1e-12, 0) is Action.BUY


def test_buy_and_hold_always_asks_to_buy():
    assert {BuyAndHold()(s, p) for s, p in [(None, 0), (1.0, 5), (np.zeros(3), 0)]} == {Action.BUY}


class _Recorder:
    """A stand-in for an SB3 model: records its observations, answers with a fixed action."""

    def __init__(self, action):
        self.action, self.seen = action, []

    def predict(self, obs, deterministic=True):
        assert deterministic
        self.seen.append(obs)
        return self.action, None


def test_rl_policy_sees_the_builders_observation_and_maps_the_action():
    model = _Recorder(np.array([2]))
    policy = RLPolicy(model, ObservationBuilder(with_position=True))
    assert policy(np.array([0.5, np.nan]), 7) is Action.BUY
    np.testing.assert_array_equal(model.seen[-1], np.array([0.5, 0.0, 1.0], dtype=np.float32))
    assert model.seen[-1].dtype == np.float32
    assert RLPolicy(_Recorder(np.array(0)))(np.zeros(2), 0) is Action.SELL
    continuous = RLPolicy.continuous(_Recorder(np.array([0.9], dtype=np.float32)))
    assert continuous(np.zeros(2), 0) is Action.BUY
    assert RLPolicy.continuous(_Recorder(np.array([-0.1])))(np.zeros(2), 0) is Action.HOLD
    assert discrete_to_action(np.array([[1]])) is Action.HOLD


def test_buy_and_hold_in_the_environment_by_hand():
    prices = np.array([10.0, 12.0, 9.0, 11.0])
    env = TradingEnv(np.zeros((4, 1), np.float32), prices, cash=1000.0, cost=0.01)
    values = rollout(env, BuyAndHold())
    n = math.floor(1000.0 / (10.0 * 1.01))  # 99 shares at the first close
    cash = 1000.0 - n * 10.0 - n * 10.0 * 0.01
    np.testing.assert_allclose(values, [1000.0, *(cash + n * prices)], rtol=1e-12)


def test_threshold_policy_in_the_environment_trades_on_the_signal_of_its_day():
    prices = np.array([10.0, 10.0, 20.0, 20.0, 5.0])
    signals = np.array([[0.5], [0.0], [-0.5], [0.5], [0.5]], np.float32)
    env = TradingEnv(signals, prices, cash=100.0, cost=0.0)
    values = rollout(env, ThresholdPolicy(0.1))
    # day 0 buys 10 shares at 10, day 1 holds, day 2 sells at 20, day 3 buys 10 at 20,
    # day 4 is the valuation day (no trade) at 5
    np.testing.assert_allclose(values, [100.0, 100.0, 100.0, 200.0, 200.0, 50.0])
    assert [int(a) for a in env.executed] == [2, 1, 0, 2, 1]


def test_the_policy_stage_imports_no_backtrader_or_strategies():
    code = ("import sys\n"
            "import storm_bt.trading, storm_bt.trading.policies, storm_bt.trading.env\n"
            "import storm_bt.trading.states, storm_bt.trading.agents, storm_bt.trading.rows\n"
            "print(','.join(m for m in ('backtrader', 'strategies') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.strip() == ""

