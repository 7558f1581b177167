"""An exponential moving average of a model's parameters (Polyak averaging).

After optimiser step k, with parameters theta_k and decay d in (0, 1):

    a_k = d a_{k-1} + (1 - d) theta_k,   a_0 = 0
    theta_bar_k = a_k / (1 - d^k)

theta_bar_k is a weighted mean of theta_1 .. theta_k with weights proportional to d^(k-j):
the bias correction (as in Adam's moments) removes the pull towards a_0 = 0, so early
averages are not dragged towards zero or towards the initial weights. Buffers (a VQ
codebook's EMA codes and counts, usage statistics) are not averaged: the averaged weights
are used with the live buffers.

`applied()` swaps theta_bar into the model for evaluation (validation, selection, the saved
weights) and puts the live parameters back afterwards, so training continues from theta_k.
"""
from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn

from storm_bt.errors import StormBtError


class ParameterAverage:
    """Bias-corrected EMA of ``model``'s parameters with decay ``decay``."""

    def __init__(self, model: nn.Module, decay: float):
        if not 0.0 < decay < 1.0:
            raise StormBtError(f"weight_ema={decay}: use a decay in (0, 1), or 0 for none")
        self.decay = float(decay)
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.sums = [torch.zeros_like(p) for p in self.params]
        self.steps = 0

    @torch.no_grad()
    def update(self) -> None:
        """Fold the current parameters into the average (call after each optimiser step)."""
        torch._foreach_mul_(self.sums, self.decay)
        torch._foreach_add_(self.sums, [p.detach() for p in self.params],
                            alpha=1.0 - self.decay)
        self.steps += 1

    @torch.no_grad()
    def averaged(self) -> list[torch.Tensor]:
        """theta_bar = a_k / (1 - d^k), one tensor per parameter."""
        if not self.steps:
            raise StormBtError("no parameters have been averaged yet: call update() after a "
                               "training step first")
        correction = 1.0 - self.decay ** self.steps
        return [s / correction for s in self.sums]

    @contextmanager
    def applied(self):
        """Within the block the model holds the averaged parameters; the live ones after."""
        live = [p.detach().clone() for p in self.params]
        with torch.no_grad():
            for p, avg in zip(self.params, self.averaged()):
                p.copy_(avg)
        try:
            yield
        finally:
            with torch.no_grad():
                for p, value in zip(self.params, live):
                    p.copy_(value)
