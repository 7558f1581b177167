"""Reproducible random batches of a config's shapes, for tests, benchmarks and smoke runs.

x ~ N(0, 1) (B, T, S, F); y ~ 0.02 N(0, 1); label_mask ~ Bernoulli(1 - p_missing);
price_mean ~ U(50, 150), price_std ~ U(1, 2) (B, T, S, P); characteristics ~ N(0, 1)
(B, S, K); all drawn from one seeded generator so the global torch RNG is left alone.
"""
from __future__ import annotations

import torch

from storm_bt.features.characteristics import CHARACTERISTIC_NAMES
from storm_bt.models.neural.batch import Batch
from storm_bt.models.storm.config import StormConfig


def random_batch(config: StormConfig, n: int = 2, seed: int = 0,
                 p_missing: float = 0.2) -> Batch:
    """A `Batch` of n samples shaped for `config`."""
    g = torch.Generator().manual_seed(seed)
    shape = (n, config.history, config.n_stocks)
    return Batch(x=torch.randn(*shape, config.n_features, generator=g),
                 y=0.02 * torch.randn(n, config.n_stocks, generator=g),
                 label_mask=torch.rand(n, config.n_stocks, generator=g) >= p_missing,
                 price_mean=50 + 100 * torch.rand(*shape, config.n_price, generator=g),
                 price_std=1 + torch.rand(*shape, config.n_price, generator=g),
                 characteristics=torch.randn(n, config.n_stocks, len(CHARACTERISTIC_NAMES),
                                             generator=g))
