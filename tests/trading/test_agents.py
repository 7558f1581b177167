"""The RL agents: the same seed gives the same agent, another seed another one, and the
trained agent's policy is its greedy action."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from storm_bt.trading.agents import AgentConfig, train_agent

torch.set_num_threads(1)


def _weights(agent) -> np.ndarray:
    return np.concatenate([p.detach().numpy().ravel() for p in agent.model.policy.parameters()])


def test_same_seed_same_agent_and_another_seed_differs():
    rng = np.random.default_rng(2)
    states = rng.normal(size=(300, 6)).astype(np.float32)
    prices = 50 * np.exp(np.cumsum(rng.normal(0, 0.02, 300)))
    for algo in ("ppo", "dqn", "sac"):
        cfg = AgentConfig(algo=algo, timesteps=600, seed=5, n_steps=64, learning_starts=100,
                          net_arch=(16,))
        a, b = train_agent(states, prices, cfg), train_agent(states, prices, cfg)
        acts_a = [a.act(s, 0) for s in states]
        assert acts_a == [b.act(s, 0) for s in states], algo
        policy = a.policy()
        assert acts_a == [policy(s, 0) for s in states], algo
        np.testing.assert_array_equal(_weights(a), _weights(b))
        c = train_agent(states, prices, replace(cfg, seed=6))
        assert not np.array_equal(_weights(a), _weights(c)), algo
