"""Trading agents from stable-baselines3, trained in `storm_bt.trading.env.TradingEnv`.

    ppo  PPO, discrete actions {SELL, HOLD, BUY}: on STORM factor states it is the paper's
         STORM trading agent; on price states the PPO baseline
    dqn  DQN, discrete actions
    sac  SAC, a continuous action a in [-1, 1] mapped to the three actions by equal bins
         (a < -1/3 SELL, a > 1/3 BUY, else HOLD; `ContinuousActions`)

Training (one agent per stock): ``n_envs`` copies of the training environment (PPO; DQN and
SAC use one) with a random first day each episode (section 7), for ``timesteps`` environment
steps; small MLP policies (``net_arch``, two layers of 64 by default) on the CPU. The learner
sees the reward x ``reward_scale`` (100: daily returns in percent). A constant factor changes
no optimal policy and leaves the environment's accounting alone; it puts values and
advantages on the scale SB3's default learning rates and SAC's entropy target are made
for (with rewards of ~1e-2, SAC's entropy bonus swamps them). The budget is the number of
timesteps; a seed fixes the network initialisation, the exploration and the environments'
start days.

Departures from the official PPO (section 7), for a CPU budget of ~1e4-1e5 steps instead of
1e8: learning rate 3e-4 (official 1e-5 / 5e-5), 4 epochs per rollout (official 1), SB3's
MLP actor-critic instead of the per-token network (the state is already pooled to a vector,
see `storm_bt.trading.states`). Kept: 4 environments x 128 steps per rollout, gamma 0.99,
GAE lambda 0.95, clip 0.2, value coefficient 0.5, entropy 0.01, gradient norm 0.5,
target KL 0.02.
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, replace
from typing import Any, Callable

import gymnasium as gym
import numpy as np

from storm_bt.errors import StormBtError
from storm_bt.trading.account import (Action, ObservationBuilder, continuous_to_action,
                                      discrete_to_action)
from storm_bt.trading.env import TradingEnv
from storm_bt.trading.policies import RLPolicy

log = logging.getLogger(__name__)

ALGOS: tuple[str, ...] = ("ppo", "dqn", "sac")


@dataclass(frozen=True)
class AgentConfig:
    """Settings of one agent (the defaults are the documented choices above)."""

    algo: str = "ppo"
    timesteps: int = 20_000
    seed: int = 1337
    net_arch: tuple[int, ...] = (64, 64)
    learning_rate: float = 3e-4
    gamma: float = 0.99
    reward_scale: float = 100.0
    with_position: bool = False
    # PPO
    n_envs: int = 4
    n_steps: int = 128
    n_epochs: int = 4
    ppo_batch_size: int = 128
    gae_lambda: float = 0.95
    clip_range: float = 0.2
    ent_coef: float = 0.01
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    target_kl: float | None = 0.02
    # DQN / SAC (off-policy)
    batch_size: int = 64
    buffer_size: int = 100_000
    learning_starts: int = 500
    dqn_train_freq: int = 4
    target_update_interval: int = 1_000
    exploration_fraction: float = 0.3
    exploration_final_eps: float = 0.05
    sac_train_freq: int = 1
    # runtime
    threads: int = 1

    def __post_init__(self) -> None:
        if self.algo not in ALGOS:
            raise StormBtError(f"agent algo {self.algo!r}: choose one of {', '.join(ALGOS)}")
        if self.timesteps < 1:
            raise StormBtError(f"--timesteps {self.timesteps}: must be at least 1")

    def as_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}


class ContinuousActions(gym.ActionWrapper):
    """A discrete {SELL, HOLD, BUY} environment seen through a Box(-1, 1, (1,)) action."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)

    def action(self, action) -> int:
        return int(continuous_to_action(action))


class ScaledReward(gym.RewardWrapper):
    """reward x scale, for the learner only."""

    def __init__(self, env: gym.Env, scale: float) -> None:
        super().__init__(env)
        self.scale = float(scale)

    def reward(self, reward: float) -> float:
        return reward * self.scale


@dataclass
class TrainedAgent:
    """A trained SB3 model, the observation builder and the action map it was trained with."""

    model: Any
    builder: ObservationBuilder
    action_map: Callable[[Any], Action]
    config: AgentConfig

    def policy(self) -> RLPolicy:
        """The greedy policy, for the environment and for backtrader alike."""
        return RLPolicy(self.model, self.builder, self.action_map)

    def act(self, state: np.ndarray, shares: float) -> Action:
        """The greedy action for a state and position."""
        return self.policy()(state, shares)


def make_env(states: np.ndarray, prices: np.ndarray, config: AgentConfig, cash: float,
             cost: float, random_start: bool = True) -> gym.Env:
    """The training environment as the learner sees it (scaled reward, SAC's action box)."""
    env: gym.Env = TradingEnv(states, prices, cash=cash, cost=cost, random_start=random_start,
                              with_position=config.with_position)
    env = ScaledReward(env, config.reward_scale)
    if config.algo == "sac":
        env = ContinuousActions(env)
    return env


def train_agent(states: np.ndarray, prices: np.ndarray, config: AgentConfig,
                cash: float = 1e5, cost: float = 1e-4) -> TrainedAgent:
    """Train one agent on (states (N, d), prices (N,)) of the training range."""
    from stable_baselines3 import DQN, PPO, SAC
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv

    from storm_bt.runtime import torch_threads

    c = config
    policy_kwargs = {"net_arch": list(c.net_arch)}
    n_envs = c.n_envs if c.algo == "ppo" else 1

    def factory(i: int):
        def build():
            return Monitor(make_env(states, prices, c, cash, cost, random_start=True))
        return build

    with torch_threads(c.threads):
        venv = DummyVecEnv([factory(i) for i in range(n_envs)])
        venv.seed(c.seed)
        common = dict(policy_kwargs=policy_kwargs, seed=c.seed, device="cpu", verbose=0,
                      gamma=c.gamma, learning_rate=c.learning_rate)
        if c.algo == "ppo":
            model = PPO("MlpPolicy", venv, n_steps=c.n_steps,
                        batch_size=min(c.ppo_batch_size, c.n_steps * n_envs),
                        n_epochs=c.n_epochs, gae_lambda=c.gae_lambda, clip_range=c.clip_range,
                        ent_coef=c.ent_coef, vf_coef=c.vf_coef, max_grad_norm=c.max_grad_norm,
                        target_kl=c.target_kl, **common)
        elif c.algo == "dqn":
            model = DQN("MlpPolicy", venv, batch_size=c.batch_size,
                        buffer_size=min(c.buffer_size, max(c.timesteps, 1)),
                        learning_starts=min(c.learning_starts, c.timesteps // 2),
                        train_freq=c.dqn_train_freq,
                        target_update_interval=c.target_update_interval,
                        exploration_fraction=c.exploration_fraction,
                        exploration_final_eps=c.exploration_final_eps, **common)
        else:
            model = SAC("MlpPolicy", venv, batch_size=c.batch_size,
                        buffer_size=min(c.buffer_size, max(c.timesteps, 1)),
                        learning_starts=min(c.learning_starts, c.timesteps // 2),
                        train_freq=c.sac_train_freq, **common)
        model.learn(total_timesteps=c.timesteps, progress_bar=False)
    action_map = continuous_to_action if c.algo == "sac" else discrete_to_action
    return TrainedAgent(model, ObservationBuilder(c.with_position), action_map, c)


def with_overrides(config: AgentConfig, **overrides) -> AgentConfig:
    """`config` with the non-None overrides applied."""
    return replace(config, **{k: v for k, v in overrides.items() if v is not None})
