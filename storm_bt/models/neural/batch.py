"""The tensor batch every torch model in storm_bt consumes.

Shapes: B samples (window end dates), T days of history, S stocks, F features, P price
fields (the first P features are the normalised prices, the reconstruction target).

A batch can hold a subset of the stocks (``stocks``, sorted column indices): the window
of sample i is features[e_i - T + 1 .. e_i, stocks, :], gathered directly, so a batch of
k stocks costs O(B T k F) whatever the size of the universe.
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np
import torch

from storm_bt.features.dataset import FeatureSet


@dataclass
class Batch:
    """x (B,T,S,F) float32 scaled features; y (B,S) next-day return with NaN set to 0;
    label_mask (B,S) bool, True where y is known; price_mean / price_std (B,T,S,P) the
    scaler's statistics of the price fields (dollars = normalised * std + mean).

    For a model that reads the whole universe (``reads_universe``) a batch of a stock subset
    also carries the universe's cross-section on its U distinct dates
    (`FeatureSet.cross_section`): universe_mean (U,F), universe_cov (U,F,F) and
    universe_index (B,T) into them; None otherwise. ``subset`` says whether the batch holds
    a subset of the universe's stocks (else its own stocks are the universe).
    characteristics (B,S,K): each stock's cross-sectional characteristic ranks
    on the window's last date (`FeatureSet.characteristics`), None where the feature set
    has none. stocks (S,): the batch's stock columns in the universe, None when it holds
    every stock."""

    x: torch.Tensor
    y: torch.Tensor
    label_mask: torch.Tensor
    price_mean: torch.Tensor
    price_std: torch.Tensor
    universe_index: torch.Tensor | None = None
    universe_mean: torch.Tensor | None = None
    universe_cov: torch.Tensor | None = None
    characteristics: torch.Tensor | None = None
    stocks: torch.Tensor | None = None
    subset: bool = False

    def to(self, device: torch.device | str) -> "Batch":
        """The batch's tensors on ``device``."""
        return replace(self, **{f.name: getattr(self, f.name).to(device) for f in fields(self)
                                if isinstance(getattr(self, f.name), torch.Tensor)})

    @property
    def has_universe(self) -> bool:
        return self.universe_index is not None

    @property
    def n_price(self) -> int:
        return self.price_mean.shape[-1]


def make_batch(data: FeatureSet, ends: np.ndarray, history: int,
               stocks: np.ndarray | None = None, universe: bool = False) -> Batch:
    """Gather the windows ending at `ends` into a `Batch`, over every stock or over the
    columns ``stocks`` only (fancy indexing makes writable copies, as torch needs); with
    ``universe`` and a subset, add the universe's cross-section on the batch's dates."""
    ends = np.asarray(ends)
    days = ends[:, None] - history + 1 + np.arange(history)[None, :]          # (B, T)
    cols = slice(None) if stocks is None else np.asarray(stocks)
    if stocks is None:
        x = data.features[days]
        pm, ps = data.price_mean[days], data.price_std[days]
        y = data.labels[ends].astype(np.float32, copy=True)
    else:
        x = data.features[days[:, :, None], cols[None, None, :]]
        pm = data.price_mean[days[:, :, None], cols[None, None, :]]
        ps = data.price_std[days[:, :, None], cols[None, None, :]]
        y = data.labels[ends[:, None], cols[None, :]].astype(np.float32, copy=True)
    mask = np.isfinite(y)
    y[~mask] = 0.0
    extra = {}
    if data.characteristics is not None:
        chars = data.characteristics[ends] if stocks is None \
            else data.characteristics[ends[:, None], cols[None, :]]
        extra["characteristics"] = torch.from_numpy(np.array(chars, dtype=np.float32))
    if universe and stocks is not None:
        mean, cov = data.cross_section
        dates, index = np.unique(days, return_inverse=True)
        extra |= {"universe_index": torch.from_numpy(index.reshape(days.shape)),
                  "universe_mean": torch.from_numpy(mean[dates]),
                  "universe_cov": torch.from_numpy(cov[dates])}
    return Batch(
        x=torch.from_numpy(np.asarray(x, dtype=np.float32)),
        y=torch.from_numpy(y),
        label_mask=torch.from_numpy(mask),
        price_mean=torch.from_numpy(np.asarray(pm, dtype=np.float32)),
        price_std=torch.from_numpy(np.asarray(ps, dtype=np.float32)),
        subset=stocks is not None,
        stocks=None if stocks is None else torch.from_numpy(np.array(stocks, dtype=np.int64)),
        **extra,
    )
