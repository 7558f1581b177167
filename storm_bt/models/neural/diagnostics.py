"""Training diagnostics shared by the torch models: gradient shares and rank correlations.

Gradient share of loss term i on a parameter set P (the shared encoders):

    g_i = || d L_i / d P ||_2,        share_i = g_i / sum_j g_j

(each term's own gradient, one backward pass per term, so the shares say which term moves
the encoders; they sum to 1 over the terms listed).

Rank IC of scores p against labels y (B, S) over the entries in a mask, per row b:

    RankIC_b = Pearson(rank p_b, rank y_b)      (Spearman; ties broken by position)

and the mean over rows with at least 3 labelled entries.
"""
from __future__ import annotations

from typing import Iterable, Mapping

import torch


def gradient_shares(terms: Mapping[str, torch.Tensor],
                    params: Iterable[torch.nn.Parameter]) -> dict[str, float]:
    """share_i = ||grad L_i|| / sum_j ||grad L_j|| over ``params`` for every term that
    depends on them (terms with no path to ``params`` get 0)."""
    params = [p for p in params if p.requires_grad]
    norms: dict[str, float] = {}
    for name, value in terms.items():
        if not value.requires_grad:
            norms[name] = 0.0
            continue
        grads = torch.autograd.grad(value, params, retain_graph=True, allow_unused=True)
        squares = [g.pow(2).sum() for g in grads if g is not None]
        norms[name] = float(torch.stack(squares).sum().sqrt()) if squares else 0.0
    total = sum(norms.values())
    return {name: (v / total if total > 0 else 0.0) for name, v in norms.items()}


def _ranks(v: torch.Tensor) -> torch.Tensor:
    return v.argsort(dim=-1).argsort(dim=-1).to(torch.float64)


def mean_rank_ic(scores: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor) -> float:
    """Mean over rows of the Spearman correlation of scores and labels (B, S) on ``mask``."""
    values = []
    for p, y, m in zip(scores.detach().cpu(), labels.detach().cpu(), mask.detach().cpu().bool()):
        if int(m.sum()) < 3:
            continue
        rp, ry = _ranks(p[m]), _ranks(y[m])
        rp, ry = rp - rp.mean(), ry - ry.mean()
        denom = float((rp.pow(2).sum() * ry.pow(2).sum()).sqrt())
        if denom > 0:
            values.append(float((rp * ry).sum()) / denom)
    return sum(values) / len(values) if values else float("nan")
