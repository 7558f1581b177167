"""`TradingStrategy` in backtrader: the environment's accounts exactly (env == backtrader to
1e-8 for every policy), the book it records, no look-ahead, a custom `decide`, the runner's
checks and the example."""
from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import backtrader as bt
import numpy as np
import pandas as pd
import pytest
import torch

from storm_bt.errors import StormBtError
from storm_bt.trading.account import Action, ObservationBuilder
from storm_bt.trading.env import TradingEnv, rollout
from storm_bt.trading.policies import BuyAndHold, RLPolicy, ThresholdPolicy
from strategies import (PortfolioStrategy, TradingStrategy, panel_feeds, run_portfolio_backtest,
                        run_trading_backtest)

torch.set_num_threads(1)

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "custom_trading_policy.py"


# ------------------------------------------------------- backtrader == the environment
@pytest.fixture(scope="module")
def aapl(dj30_panel):
    """AAPL over 2021-04-01 .. 2022-03-31 and random daily signals on those days."""
    panel = dj30_panel.select(["AAPL", "MSFT"]).until("2022-03-31")
    days = panel.dates[panel.dates >= "2021-04-01"]
    prices = panel.field("adj_close").loc[days, "AAPL"].to_numpy()
    rng = np.random.default_rng(7)
    signals = pd.DataFrame(rng.normal(0, 1, (len(days), 3)).astype(np.float32), index=days)
    return panel, days, prices, signals


def _both(panel, prices, signals, policy, cost_bps):
    env = TradingEnv(signals.to_numpy(), prices, cash=1e5, cost=cost_bps / 1e4)
    expected = rollout(env, policy)
    result = run_trading_backtest(panel, "AAPL", signals, policy, "2021-04-01", "2022-03-31",
                                  cash=1e5, cost_bps=cost_bps)
    return env, expected, result


@pytest.mark.parametrize("cost_bps", [1.0, 25.0])
def test_threshold_policy_in_backtrader_equals_the_environment(aapl, cost_bps):
    panel, days, prices, signals = aapl
    policy = ThresholdPolicy(0.3)
    env, expected, result = _both(panel, prices, signals.iloc[:, 0], policy, cost_bps)
    assert len(result.trades) > 40  # the comparison covers many buys and sells
    np.testing.assert_allclose(result.values, expected, rtol=1e-8)
    assert result.actions.tolist() == [int(a) for a in env.executed]
    assert result.equity.index.equals(days)
    # The fills are at the decision day's adjusted close, integer sizes, bps commission.
    fills = result.trades
    px = pd.Series(prices, index=days).loc[fills["date"]].to_numpy()
    np.testing.assert_allclose(fills["price"], px, rtol=1e-12)
    assert (fills["size"] == fills["size"].round()).all()
    np.testing.assert_allclose(fills["commission"], fills["size"].abs() * px * cost_bps / 1e4,
                               rtol=1e-9)
    # returns are r_t = V_t / V_{t-1} - 1 from the initial cash, i.e. the env's rewards
    np.testing.assert_allclose(result.returns, expected[1:] / expected[:-1] - 1, atol=1e-12)


def test_rl_policy_in_backtrader_equals_the_environment(aapl):
    from stable_baselines3 import PPO

    panel, days, prices, signals = aapl
    builder = ObservationBuilder(with_position=True)
    train = TradingEnv(signals.to_numpy(), prices, random_start=True, with_position=True)
    model = PPO("MlpPolicy", train, n_steps=64, batch_size=32, n_epochs=1, seed=3,
                device="cpu", policy_kwargs={"net_arch": [16]})
    model.learn(128)
    policy = RLPolicy(model, builder)
    env = TradingEnv(signals.to_numpy(), prices, cash=1e5, cost=1e-4, with_position=True)
    # the env's own loop on the model's observations
    obs, _ = env.reset()
    done = False
    while not done:
        action, _ = model.predict(obs, deterministic=True)
        obs, _, done, _, _ = env.step(int(action))
    expected = np.array([1e5, *env.values])
    result = run_trading_backtest(panel, "AAPL", signals, policy, "2021-04-01", "2022-03-31",
                                  cash=1e5, cost_bps=1.0)
    np.testing.assert_allclose(result.values, expected, rtol=1e-8)
    assert result.actions.tolist() == [int(a) for a in env.executed]


def test_continuous_rl_policy_and_buy_and_hold(aapl):
    panel, days, prices, signals = aapl

    class SignModel:  # a deterministic "continuous" model: the first state entry, clipped
        def predict(self, obs, deterministic=True):
            return np.clip(obs[:1], -1, 1), None

    for policy in (RLPolicy.continuous(SignModel()), BuyAndHold()):
        env, expected, result = _both(panel, prices, signals, policy, 5.0)
        np.testing.assert_allclose(result.values, expected, rtol=1e-8)
    # buy and hold by hand: one buy at the first close, marked at the last
    n = math.floor(1e5 / (prices[0] * (1 + 5e-4)))
    final = 1e5 - n * prices[0] * (1 + 5e-4) + n * prices[-1]
    assert result.values[-1] == pytest.approx(final, rel=1e-12)


def test_decisions_ignore_prices_and_signals_after_them(aapl):
    """Changing prices and signals after day X changes no value up to X."""
    from storm_bt.data.panel import Panel

    panel, days, prices, signals = aapl
    policy = ThresholdPolicy(0.3)
    full = run_trading_backtest(panel, "AAPL", signals.iloc[:, 0], policy, days[0], days[-1])
    k = 120
    cut_day = days[k]
    noisy = signals.iloc[:, 0].copy()
    noisy.loc[noisy.index > cut_day] *= -3.0
    values = panel.values.copy()
    values[panel.dates > cut_day] *= 1.5
    future = Panel(panel.dates, panel.tickers, panel.fields, values, panel.mask, panel.source)
    other = run_trading_backtest(future, "AAPL", noisy, policy, days[0], days[-1])
    np.testing.assert_array_equal(other.values[: k + 2], full.values[: k + 2])  # V_-1 .. V_X
    assert not np.allclose(other.values[k + 2:], full.values[k + 2:])


def test_a_subclass_with_its_own_decide_matches_the_same_rule_in_the_env(aapl):
    panel, days, prices, signals = aapl

    def contrarian(signal, position):
        return Action.SELL if float(np.ravel(signal)[0]) > 0.5 else Action.BUY

    class Contrarian(TradingStrategy):
        def decide(self, signal, position):
            return contrarian(signal, position)

    env = TradingEnv(signals.to_numpy()[:, :1], prices, cash=1e5, cost=1e-4)
    expected = rollout(env, contrarian)
    result = run_trading_backtest(panel, "AAPL", signals.iloc[:, 0], None, days[0], days[-1],
                                  strategy_cls=Contrarian)
    assert len(result.trades) > 10
    np.testing.assert_allclose(result.values, expected, rtol=1e-8)


def test_the_book_after_a_buy_and_a_sell_by_hand(aapl):
    """equity, cash and fills of two trades, from the account rules on the raw closes."""
    panel, days, prices, _ = aapl
    signals = pd.Series(0.0, index=days)
    signals.iloc[3], signals.iloc[10] = 1.0, -1.0
    result = run_trading_backtest(panel, "AAPL", signals, ThresholdPolicy(0.5), days[0],
                                  days[-1], cash=1e5, cost_bps=10.0)
    n = math.floor(1e5 / (prices[3] * 1.001))
    cash_held = 1e5 - n * prices[3] - n * prices[3] * 1e-3
    cash_end = cash_held + n * prices[10] - n * prices[10] * 1e-3
    want = np.full(len(days), 1e5)
    want[3:10] = cash_held + n * prices[3:10]
    want[10:] = cash_end
    np.testing.assert_allclose(result.equity.to_numpy(), want, rtol=1e-12)
    assert result.trades["ticker"].tolist() == ["AAPL", "AAPL"]
    assert result.trades["size"].tolist() == [n, -n]
    assert list(result.trades["date"]) == [days[3], days[10]]
    assert result.actions.iloc[[3, 10]].tolist() == [int(Action.BUY), int(Action.SELL)]
    assert (result.actions.drop(index=days[[3, 10]]) == int(Action.HOLD)).all()


def test_both_families_share_one_returns_convention(aapl, dj30_panel):
    """r_t = V_t / V_{t-1} - 1 with V_{-1} the cash, from the first bar a fill can change:
    the same close for TradingStrategy, the next open for PortfolioStrategy."""
    panel, days, prices, signals = aapl
    trading = run_trading_backtest(panel, "AAPL", None, BuyAndHold(), days[0], days[-1])
    v = trading.values
    np.testing.assert_allclose(trading.returns.to_numpy(), v[1:] / v[:-1] - 1, rtol=0, atol=0)
    assert trading.returns.index.equals(days) and trading.returns.iloc[0] < 0  # day 0 commission
    weights = pd.DataFrame(0.5, index=days[:1], columns=["AAPL", "MSFT"])
    book = run_portfolio_backtest(panel, weights, days[0], days[-1], cash=1e5)
    e = book.equity.to_numpy()
    assert e[0] == 1e5  # nothing can fill before the second bar's open
    np.testing.assert_allclose(book.returns.to_numpy(), e[1:] / e[:-1] - 1, rtol=0, atol=0)
    assert book.returns.index.equals(days[1:])


def test_trading_cash_is_the_cash_after_the_days_trade(aapl):
    panel, days, prices, _ = aapl
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.broker.setcash(1e5)
    cerebro.broker.set_coc(True)
    (feed,) = panel_feeds(panel.select(["AAPL"]), days[0], days[20])
    cerebro.adddata(feed)
    cerebro.addstrategy(TradingStrategy, policy=BuyAndHold(), cost_bps=5.0)
    strategy = cerebro.run()[0]
    n = math.floor(1e5 / (prices[0] * 1.0005))
    cash = 1e5 - n * prices[0] - n * prices[0] * 5e-4
    np.testing.assert_allclose(strategy.cash().to_numpy(), cash, rtol=1e-12)
    np.testing.assert_allclose(strategy.equity().to_numpy(), cash + n * prices[:21], rtol=1e-12)


def test_trading_strategy_needs_cheat_on_close(aapl):
    panel, days, _, _ = aapl
    cerebro = bt.Cerebro(stdstats=False)
    (feed,) = panel_feeds(panel.select(["AAPL"]), days[0], days[20])
    cerebro.adddata(feed)
    cerebro.addstrategy(TradingStrategy, policy=BuyAndHold())
    with pytest.raises(StormBtError, match="set_coc"):
        cerebro.run()


# ------------------------------------------------------------------- next-open fills
def _next_open_replay(days, opens, closes, signals, policy, cash, rate):
    """The documented next-open execution, written from scratch: the decision at the close
    of t fills at the open of t+1 (integer shares, commission on traded value); the value
    is cash + shares x close after each day."""
    shares, pending, values, fills = 0, None, [], []
    for t in range(len(days)):
        if pending is not None:
            o = opens[t]
            if pending == Action.BUY and shares == 0:
                n = math.floor(cash / (o * (1 + rate)))
                while n > 0 and n * o + n * o * rate > cash:
                    n -= 1
                if n > 0:
                    cash, shares = cash - n * o - n * o * rate, n
                    fills.append((days[t], n, o))
            elif pending == Action.SELL and shares > 0:
                fills.append((days[t], -shares, o))
                cash, shares = cash + shares * o - shares * o * rate, 0
            pending = None
        values.append(cash + shares * closes[t])
        if t < len(days) - 1:  # the last bar is a valuation day
            pending = policy(signals[t], shares)
    return np.array(values), fills


def test_next_open_fills_at_the_next_bars_open_by_an_independent_replay(aapl, dj30_panel):
    panel, days, closes, signals = aapl
    raw = dj30_panel.select(["AAPL"])  # the total-return open, from the panel's own fields
    opens = (raw.field("open") * raw.field("adj_close") / raw.field("close")).loc[days, "AAPL"]
    policy, rate = ThresholdPolicy(0.3), 5e-4
    s = signals.iloc[:, 0]
    result = run_trading_backtest(panel, "AAPL", s, policy, days[0], days[-1], cash=1e5,
                                  cost_bps=5.0, fill="next-open")
    values, fills = _next_open_replay(days, opens.to_numpy(), closes, s.to_numpy(), policy,
                                      1e5, rate)
    assert len(fills) > 40
    trades = result.trades
    assert list(trades["date"]) == [f[0] for f in fills]  # each fill a bar after its decision
    assert trades["size"].tolist() == [f[1] for f in fills]
    np.testing.assert_allclose(trades["price"], opens.loc[trades["date"]], rtol=1e-12)
    assert not np.allclose(trades["price"], pd.Series(closes, index=days).loc[trades["date"]])
    np.testing.assert_allclose(result.equity.to_numpy(), values, rtol=1e-10)
    # the action column marks the fill bar; nothing can fill on the first bar
    executed = result.actions[result.actions != int(Action.HOLD)]
    assert list(executed.index) == list(trades["date"])
    assert result.returns.index.equals(days[1:]) and result.values[1] == 1e5
    # the same run at the close differs (the fills move by one bar and one price)
    close_run = run_trading_backtest(panel, "AAPL", s, policy, days[0], days[-1], cash=1e5,
                                     cost_bps=5.0)
    assert close_run.trades["date"].iloc[0] < trades["date"].iloc[0]


def test_next_open_decisions_ignore_everything_after_their_close(aapl):
    """Changing the signals after day k changes no fill and no value up to day k + 1 (the
    decision of k fills at the open of k + 1)."""
    panel, days, _, signals = aapl
    k = 120
    s = signals.iloc[:, 0]
    base = run_trading_backtest(panel, "AAPL", s, ThresholdPolicy(0.3), days[0], days[-1],
                                fill="next-open")
    later = s.copy()
    later.iloc[k + 1:] = -later.iloc[k + 1:]
    cut = run_trading_backtest(panel, "AAPL", later, ThresholdPolicy(0.3), days[0], days[-1],
                               fill="next-open")
    upto = base.trades["date"] <= days[k + 1]
    pd.testing.assert_frame_equal(base.trades[upto].reset_index(drop=True),
                                  cut.trades[cut.trades["date"] <= days[k + 1]]
                                  .reset_index(drop=True))
    np.testing.assert_array_equal(base.values[:k + 2], cut.values[:k + 2])


def test_next_open_needs_cheat_on_open_and_a_known_fill(aapl):
    panel, days, _, _ = aapl
    cerebro = bt.Cerebro(stdstats=False)
    (feed,) = panel_feeds(panel.select(["AAPL"]), days[0], days[20])
    cerebro.adddata(feed)
    cerebro.addstrategy(TradingStrategy, policy=BuyAndHold(), fill="next-open")
    with pytest.raises(StormBtError, match="cheat_on_open"):
        cerebro.run()
    with pytest.raises(StormBtError, match="--fill 'sideways'"):
        run_trading_backtest(panel, "AAPL", None, BuyAndHold(), days[0], days[-1],
                             fill="sideways")


@pytest.mark.parametrize("kwargs, needle", [
    ({"cash": 0.0}, "cash 0.0: must be a positive number"),
    ({"cash": float("nan")}, "cash nan"),
    ({"cost_bps": -1.0}, "cost_bps -1.0"),
    ({"strategy_cls": PortfolioStrategy}, "must be a subclass of TradingStrategy"),
    ({"signals": [0.1, 0.2]}, "param 'signals' must be a Series"),
    ({"signals": pd.Series(["a", "b"], index=pd.to_datetime(["2021-04-01", "2021-04-05"]))},
     "param 'signals': values must be numbers"),
])
def test_bad_trading_inputs_are_user_errors(aapl, kwargs, needle):
    panel, days, _, _ = aapl
    args = {"signals": None, **kwargs}
    signals = args.pop("signals")
    with pytest.raises(StormBtError, match=needle.replace("(", r"\(")):
        run_trading_backtest(panel, "AAPL", signals, BuyAndHold(), days[0], days[-1], **args)


def test_the_portfolio_runner_checks_its_cost_and_class_the_same_way(aapl):
    panel, days, _, _ = aapl
    weights = pd.DataFrame(0.5, index=days[:1], columns=["AAPL", "MSFT"])
    with pytest.raises(StormBtError, match="cost_bps -2.0"):
        run_portfolio_backtest(panel, weights, days[0], days[-1], cost_bps=-2.0)
    with pytest.raises(StormBtError, match="must be a subclass of PortfolioStrategy"):
        run_portfolio_backtest(panel, weights, days[0], days[-1], strategy_cls=TradingStrategy)
    with pytest.raises(StormBtError, match="cash -1"):
        run_portfolio_backtest(panel, weights, days[0], days[-1], cash=-1)


def test_two_feeds_are_refused(aapl):
    panel, days, _, _ = aapl
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.broker.set_coc(True)
    for feed in panel_feeds(panel, days[0], days[20]):
        cerebro.adddata(feed)
    cerebro.addstrategy(TradingStrategy)
    with pytest.raises(StormBtError, match="trades one stock, got 2 feeds"):
        cerebro.run()


def test_example_trend_band_trades_by_its_rule(embedded_panel):
    spec = importlib.util.spec_from_file_location("custom_trading_policy_example", EXAMPLE)
    example = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = example  # backtrader looks strategy classes up by module
    spec.loader.exec_module(example)
    results = example.main(["--start", "2020-01-02", "--end", "2021-12-31", "--band", "0.02"])
    ours, hold = results["TrendBand"], results["buy-and-hold"]
    assert len(ours.trades) > 4 and len(hold.trades) == 1
    # every buy is at a close above the 50-day average by more than the band, every sell below
    adj = embedded_panel.field("adj_close")["AAPL"]
    average = adj.rolling(50, min_periods=50).mean()
    for _, fill in ours.trades.iterrows():
        price, avg = adj.loc[fill["date"]], average.loc[fill["date"]]
        assert fill["price"] == pytest.approx(price, rel=1e-12)
        assert price > avg * 1.02 if fill["size"] > 0 else price < avg * 0.98
