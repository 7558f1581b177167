"""Training targets of the neural models: the label a model fits and the masked loss.

The label is the next-day return y, or its cross-sectional z-score per day,
z_s = (y_s − mean_s y) / (std_s y + 1e-6) over the stocks with a label (the default: scores,
not returns, as the baselines and STORM fit). Losses average only over (window, stock)
pairs that have a label. A third label, the rank-Gaussian score Φ⁻¹((r_s + ½)/n) of each
stock's rank r_s among the n labelled stocks, standardised the same way, depends on the
day's returns only through their order (`cross_sectional_rank_gauss`).
"""
from __future__ import annotations

import torch
from torch import nn

from storm_bt.models.neural.batch import Batch
from storm_bt.models.neural.distributed import count_per_rank


def cross_sectional_zscore(y: torch.Tensor, mask: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """(y - mean_s y) / std_s y per row over the stocks in ``mask`` (B, S); 0 elsewhere."""
    m = mask.to(y.dtype)
    n = m.sum(dim=1, keepdim=True).clamp_min(1.0)
    mean = (y * m).sum(dim=1, keepdim=True) / n
    var = (((y - mean) * m) ** 2).sum(dim=1, keepdim=True) / n
    return torch.where(mask, (y - mean) / (var.sqrt() + eps), torch.zeros_like(y))


def cross_sectional_rank_gauss(y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per row, g_s = Φ⁻¹((r_s + ½) / n) over the n stocks in ``mask`` (B, S), with r_s the
    0-based rank of y_s among them (tied values share their mean rank), then z-scored as
    `cross_sectional_zscore` does; 0 outside ``mask``.

    Any increasing transform of a day's returns gives the same labels, so one extreme
    return moves a label no further than its rank allows.
    """
    valid = mask.bool()
    ranked = torch.where(valid, y, torch.full_like(y, torch.inf)).contiguous()
    ordered = ranked.sort(dim=1).values
    below = torch.searchsorted(ordered, ranked, right=False)
    through = torch.searchsorted(ordered, ranked, right=True)
    rank = (below + through - 1).to(y.dtype) / 2
    n = valid.sum(dim=1, keepdim=True).clamp_min(1).to(y.dtype)
    u = torch.where(valid, (rank + 0.5) / n, torch.full_like(y, 0.5))
    return cross_sectional_zscore(torch.special.ndtri(u), valid)


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of (pred - target)^2 over the entries in ``mask`` (under DDP over every rank's:
    `distributed.count_per_rank`)."""
    m = mask.to(pred.dtype)
    return (((pred - target) ** 2) * m).sum() / count_per_rank(m.sum())


def regression_target(batch: Batch, zscore: bool) -> torch.Tensor:
    """The label a regression baseline fits: raw next-day returns or their daily z-scores."""
    return cross_sectional_zscore(batch.y, batch.label_mask) if zscore else batch.y


def per_stock_sequences(x: torch.Tensor) -> torch.Tensor:
    """(B, T, S, F) windows -> (B*S, T, F): one sequence per stock, stock-major per sample."""
    b, t, s, f = x.shape
    return x.permute(0, 2, 1, 3).reshape(b * s, t, f)


class ReturnRegressor(nn.Module):
    """Base of models whose ``forward(x)`` gives the scores (B, S) directly: the loss is the
    masked MSE against the next-day return, or its daily z-score when
    ``self.config.zscore_labels``; prediction is ``forward`` on the window."""

    def losses(self, batch: Batch) -> dict[str, torch.Tensor]:
        target = regression_target(batch, self.config.zscore_labels)
        mse = masked_mse(self(batch.x), target, batch.label_mask)
        return {"total": mse, "mse": mse}

    def predict(self, batch: Batch) -> torch.Tensor:
        return self(batch.x)
