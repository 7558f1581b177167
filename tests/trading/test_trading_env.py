"""The single-stock account and the gymnasium environment (STORM_SPEC section 7): hand-computed
accounts, rewards and costs. Backtrader's side of the same rules: tests/strategies/
test_trading_strategy.py."""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from storm_bt.trading.account import (Account, Action, ObservationBuilder,
                                      continuous_to_action, shares_to_buy)
from storm_bt.trading.env import TradingEnv


def _env(prices, cash=1000.0, cost=0.01, **kw) -> TradingEnv:
    prices = np.asarray(prices, dtype=float)
    return TradingEnv(np.zeros((len(prices), 2), np.float32), prices, cash=cash, cost=cost, **kw)


def test_buy_when_invested_and_sell_when_flat_are_holds_with_rewards_by_hand():
    env = _env([10.0, 11.0, 12.0, 13.0], cash=1000.0, cost=0.01)
    env.reset()
    # SELL while flat: nothing happens, no cost.
    _, r, done, _, info = env.step(Action.SELL)
    assert info["executed"] == Action.HOLD and r == 0.0 and not done and info["cash"] == 1000.0
    # BUY at 11: n = floor(1000 / (11 * 1.01)) = 90; cash = 1000 - 990 - 9.9 = 0.1.
    _, r, _, _, info = env.step(Action.BUY)
    assert info["executed"] == Action.BUY and info["shares"] == 90
    assert info["cash"] == pytest.approx(0.1, abs=1e-9)
    v1 = 0.1 + 90 * 11.0
    assert r == pytest.approx(v1 / 1000.0 - 1.0, rel=1e-12)  # the commission, at once
    # BUY again while invested: a HOLD; the reward is the price move on 90 shares.
    _, r, _, _, info = env.step(Action.BUY)
    assert info["executed"] == Action.HOLD and info["shares"] == 90 and info["commission"] == 0
    v2 = 0.1 + 90 * 12.0
    assert r == pytest.approx(v2 / v1 - 1.0, rel=1e-12)
    # The last day is a valuation day: a SELL there is not executed and ends the episode.
    _, r, done, _, info = env.step(Action.SELL)
    assert done and info["executed"] == Action.HOLD and info["shares"] == 90
    assert r == pytest.approx((0.1 + 90 * 13.0) / v2 - 1.0, rel=1e-12)
    assert env.values == pytest.approx([1000.0, v1, v2, 0.1 + 90 * 13.0])


def test_sell_pays_the_commission_and_rewards_compound_to_the_final_value():
    prices = [50.0, 40.0, 45.0, 47.0, 44.0]
    env = _env(prices, cash=10_000.0, cost=0.002)
    env.reset()
    rewards = []
    for a in (Action.BUY, Action.HOLD, Action.SELL, Action.HOLD, Action.HOLD):
        rewards.append(env.step(a)[1])
    n = math.floor(10_000.0 / (50.0 * 1.002))
    cash = 10_000.0 - n * 50.0 * 1.002 + n * 45.0 * 0.998
    assert env.account.shares == 0 and env.account.cash == pytest.approx(cash, rel=1e-12)
    # The day-2 reward is the move 40 -> 45 on n shares, minus the sale's commission.
    v1 = 10_000.0 - n * 50.0 * 1.002 + n * 40.0
    assert rewards[2] == pytest.approx((cash - v1) / v1, rel=1e-10)
    assert np.prod(1.0 + np.array(rewards)) == pytest.approx(cash / 10_000.0, rel=1e-12)
    assert rewards[3] == rewards[4] == 0.0  # flat: nothing moves


def test_zero_cost_buy_is_free_and_cost_scales_linearly():
    for cost in (0.0, 1e-4, 1e-3):
        env = _env([20.0, 20.0], cash=1e5, cost=cost)
        env.reset()
        _, r, *_ = env.step(Action.BUY)
        n = math.floor(1e5 / (20.0 * (1 + cost)))
        assert r == pytest.approx(-n * 20.0 * cost / 1e5, abs=1e-15)


def test_shares_to_buy_matches_exact_arithmetic():
    rng = np.random.default_rng(0)
    for _ in range(2000):
        cash = float(rng.uniform(1, 1e6))
        price = float(rng.uniform(0.5, 3000))
        cost = float(rng.choice([0.0, 1e-4, 1e-3, 0.01]))
        n = shares_to_buy(cash, price, cost)
        exact = math.floor(Fraction(cash) / (Fraction(price) * (1 + Fraction(cost))))
        assert n in (exact, exact - 1)
        assert n * price + n * price * cost <= cash
    # exactly affordable in real numbers: the float guard may not overspend
    assert shares_to_buy(3 * 10.0 * 1.1, 10.0, 0.1) * 11.0 <= 33.0 + 1e-12
    assert shares_to_buy(100.0, float("nan"), 0.0) == 0 and shares_to_buy(5.0, 10.0, 0.0) == 0


def test_reset_works_and_random_starts_stay_in_range():  # D12: reset must not crash
    n = 41
    env = _env(np.linspace(10, 20, n), random_start=True)
    starts = set()
    for seed in range(200):
        obs, info = env.reset(seed=seed)
        assert obs.shape == (2,) and info["day"] == env.t
        starts.add(env.t)
    assert min(starts) >= 0 and max(starts) <= 3 * (n // 4)
    assert len(starts) > 10
    evaluation = _env(np.linspace(10, 20, n))
    assert all(evaluation.reset(seed=s)[1]["day"] == 0 for s in range(5))


def test_position_flag_in_the_observation():
    env = _env([10.0, 10.0, 10.0], with_position=True)
    obs, _ = env.reset()
    assert obs.shape == (3,) and obs[-1] == 0.0
    obs, *_ = env.step(Action.BUY)
    assert obs[-1] == 1.0
    assert ObservationBuilder(False)(np.array([1.0, np.nan]), 5).tolist() == [1.0, 0.0]


@pytest.mark.filterwarnings("ignore:.*Box observation space:UserWarning")
def test_gymnasium_env_checker_passes():
    from gymnasium.utils.env_checker import check_env

    rng = np.random.default_rng(1)
    env = TradingEnv(rng.normal(size=(30, 4)).astype(np.float32),
                     100 * np.exp(np.cumsum(rng.normal(0, 0.01, 30))), random_start=True)
    check_env(env, skip_render_check=True)


def test_continuous_actions_map_to_three_equal_bins():
    assert continuous_to_action(np.array([-0.9])) is Action.SELL
    assert continuous_to_action(np.array([-0.2])) is Action.HOLD
    assert continuous_to_action(0.2) is Action.HOLD
    assert continuous_to_action(np.array([0.5], dtype=np.float32)) is Action.BUY


def test_bad_env_inputs_are_user_errors():
    from storm_bt.errors import StormBtError

    with pytest.raises(StormBtError, match="price on day 1"):
        _env([10.0, np.nan, 11.0])
    with pytest.raises(StormBtError, match="states must be"):
        TradingEnv(np.zeros((3, 2)), np.ones(4))


def test_account_never_shorts_or_levers():
    acc = Account(cash=1000.0, cost=1e-3)
    rng = np.random.default_rng(3)
    for _ in range(500):
        acc.apply(Action(int(rng.integers(0, 3))), float(rng.uniform(5, 50)))
        assert acc.shares >= 0 and acc.cash >= 0
