"""The policy stage of single-stock trading (STORM_SPEC section 7): buy all-in / hold / sell all.

No backtrader here (that is `strategies.trading`); the modules run down the stage:

- `storm_bt.trading.account`: the account rules and `Action`; imported here.
- `storm_bt.trading.policies`: ``policy(signal, position) -> Action`` callables
  (`BuyAndHold`, `ThresholdPolicy`, `RLPolicy`), run by the environment and by backtrader.
- `storm_bt.trading.env`: the gymnasium `TradingEnv` with the same accounts (imports gymnasium).
- `storm_bt.trading.states`: per-day state vectors (price features, pooled STORM factors).
- `storm_bt.trading.agents`: stable-baselines3 PPO / DQN / SAC trained in the environment.
- `storm_bt.trading.rows`: the rows of the paper's trading table, as constants.

The table itself (fit, states, agents, backtests) is `storm_bt.experiments.trading_table`.
Only `account` is imported eagerly, so `strategies` can use it without loading torch.
"""
from storm_bt.trading.account import (Account, Action, ObservationBuilder,
                                      continuous_to_action, discrete_to_action, shares_to_buy)

__all__ = ["Account", "Action", "ObservationBuilder", "continuous_to_action",
           "discrete_to_action", "shares_to_buy"]
