"""Single-stock trading (STORM_SPEC section 7): buy all-in / hold / sell all.

- `storm_bt.trading.account`: the account rules and `Action` (shared with backtrader's
  `strategies.trading`); imported here.
- `storm_bt.trading.env`: the gymnasium `TradingEnv` (imports gymnasium).
- `storm_bt.trading.states`: per-day state vectors (price features, pooled STORM factors).
- `storm_bt.trading.agents`: stable-baselines3 PPO / DQN / SAC trained in the environment.
- `storm_bt.trading.table`: every model per ticker on the test period, the paper's table.

Only `account` is imported eagerly, so `strategies` can use it without loading torch.
"""
from storm_bt.trading.account import (Account, Action, ObservationBuilder,
                                      continuous_to_action, shares_to_buy)

__all__ = ["Account", "Action", "ObservationBuilder", "continuous_to_action", "shares_to_buy"]
