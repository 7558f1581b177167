"""The rows of the paper's single-stock trading table (STORM_SPEC 7), as plain constants.

    buy-and-hold            buy on the first test day, hold to the end
    lightgbm, lstm,         a fitted predictor's next-day return with `ThresholdPolicy`
    transformer
    dqn, sac, ppo           an agent on the stock's price state
    storm, storm-ts,        PPO on the fitted model's factor state: the paper's STORM;
    storm-cs                storm-ts = STORM-w/o-CS, storm-cs = STORM-w/o-TS

Kept free of heavy imports, so the command line can list them without loading torch or
stable-baselines3.
"""
from __future__ import annotations

from storm_bt.models.registry import MODELS

PREDICTOR_MODELS: tuple[str, ...] = ("lightgbm", "lstm", "transformer")
PRICE_AGENTS: tuple[str, ...] = ("dqn", "sac", "ppo")
STORM_MODELS: tuple[str, ...] = ("storm-cs", "storm-ts", "storm")
#: Every row, in the table's order.
TABLE_MODELS: tuple[str, ...] = ("buy-and-hold", *PREDICTOR_MODELS, *PRICE_AGENTS, *STORM_MODELS)
#: The rows STORM is compared with in the Improvement(%) row (the ablations are not baselines).
BASELINES: tuple[str, ...] = ("buy-and-hold", *PREDICTOR_MODELS, *PRICE_AGENTS)
#: The paper's display names.
LABELS: dict[str, str] = {"buy-and-hold": "Buy&Hold", "dqn": "DQN", "sac": "SAC", "ppo": "PPO",
                          **{m: MODELS[m].label for m in (*PREDICTOR_MODELS, *STORM_MODELS)}}
#: The paper's five trading stocks (STORM_SPEC D18).
PAPER_TICKERS: tuple[str, ...] = ("AAPL", "JPM", "IBM", "INTC", "MSFT")

#: Default environment steps per agent and preset. Measured on AAPL (3,274 training days,
#: 1 thread, `python benchmarks/bench_trading.py --agents`, 2026-12-02 on the shared 2-core
#: machine at load 6-7): PPO ~4,100 steps per CPU second, DQN ~1,700, SAC ~240 (SAC's cost
#: is its one gradient update per step); one ``small`` agent is then about 25 / 58 / 85 CPU
#: seconds, and the table's 20 PPO + 5 DQN + 5 SAC agents (5 tickers) about 20 CPU minutes.
TIMESTEPS: dict[str, dict[str, int]] = {
    "tiny": {"ppo": 2_048, "dqn": 2_000, "sac": 500},
    "small": {"ppo": 102_400, "dqn": 100_000, "sac": 20_000},
    "paper": {"ppo": 1_024_000, "dqn": 1_000_000, "sac": 200_000},
}
