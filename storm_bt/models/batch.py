"""The tensor batch every torch model in storm_bt consumes.

Shapes: B samples (window end dates), T days of history, S stocks, F features, P price
fields (the first P features are the normalised prices, the reconstruction target).
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import torch

from storm_bt.dataset import FeatureSet


@dataclass
class Batch:
    """x (B,T,S,F) float32 scaled features; y (B,S) next-day return with NaN set to 0;
    label_mask (B,S) bool, True where y is known; price_mean / price_std (B,T,S,P) the
    scaler's statistics of the price fields (dollars = normalised * std + mean)."""

    x: torch.Tensor
    y: torch.Tensor
    label_mask: torch.Tensor
    price_mean: torch.Tensor
    price_std: torch.Tensor

    def to(self, device: torch.device | str) -> "Batch":
        return Batch(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})

    @property
    def n_price(self) -> int:
        return self.price_mean.shape[-1]


def make_batch(data: FeatureSet, ends: np.ndarray, history: int) -> Batch:
    """Gather the windows ending at `ends` into a `Batch` (copies: pandas 3 / strided views
    are read-only, torch needs writable memory)."""
    x = data.windows(ends, history)
    y = data.labels[ends].astype(np.float32, copy=True)
    mask = np.isfinite(y)
    y[~mask] = 0.0
    pm, ps = data.price_windows(ends, history)
    return Batch(
        x=torch.from_numpy(np.array(x, dtype=np.float32, copy=True)),
        y=torch.from_numpy(y),
        label_mask=torch.from_numpy(mask.copy()),
        price_mean=torch.from_numpy(np.array(pm, copy=True)),
        price_std=torch.from_numpy(np.array(ps, copy=True)),
    )
