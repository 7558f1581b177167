"""The STORM loss terms as pure functions (STORM_SPEC sections 2.4-2.7 and 3), unweighted.

    commitment      mean (z - sg(q))^2                       over all elements
    orthogonality   sum_ij (e_i . e_j)^2 / K^2 - 1/K         e_i the L2-normalised codes
    diversity       -mean_l H(mean_b p_{b,l,.})              H(p) = -sum_k p_k log max(p_k, 1e-5)
                    scaled p = softmax_k(-||z - e_k||^2 / (tau g)), g = mean_n (mean_k - min_k)
                           ||z_n - e_k||^2 (detached): tau is relative to the code distances
                    fixed  p = softmax_k(-||z - e_k||^2 / tau)
                    parity p = softmax_k(+||z - e_k|| * tau)   (the official sign quirk, D6)
    CLIP            1/2 [CE(s C T^T, I) + CE(s T C^T, I)]    C, T L2-normalised, s = e^tau (D3)
    KL              sum_m KL(N(mu1, s1^2) || N(mu2, s2^2))
                    = 1/2 sum_m [lv2 - lv1 + (e^lv1 + (mu1 - mu2)^2) / e^lv2 - 1]
    reconstruction  per-element mean (x_hat - x)^2, or the per-sample SSE sum_{t,s,p} (parity)
    return          mean over labelled (b, s) of (y - y_hat)^2                      (mse)
                    or of 1/2 log(2 pi sigma^2) + (y - mu)^2 / (2 sigma^2)           (nll)
    IC              1 - mean_b corr_s(y_hat_b, y_b)    Pearson over the labelled stocks of a row
    price           mean relu(low - {other fields}) + mean relu({other fields} - high)
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from storm_bt.models.neural.distributed import count_per_rank

ENTROPY_EPS = 1e-5
LOGVAR_RANGE = (-30.0, 20.0)


def commitment_loss(z: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """mean (z - sg(q))^2: pulls the encoder output towards its (fixed) code."""
    return F.mse_loss(z, q.detach())


def codebook_loss(z: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """mean (sg(z) - q)^2: pulls the chosen codes towards the encoder output (grad mode)."""
    return F.mse_loss(q, z.detach())


def orthogonality_loss(codebook: torch.Tensor) -> torch.Tensor:
    """sum_ij (e_i . e_j)^2 / K^2 - 1/K on row-normalised codes (0 for orthonormal codes
    when K <= dim)."""
    k = codebook.shape[0]
    e = F.normalize(codebook, dim=-1)
    return (e @ e.T).pow(2).sum() / k**2 - 1.0 / k


def entropy(p: torch.Tensor) -> torch.Tensor:
    """-sum_k p_k log max(p_k, 1e-5) over the last axis."""
    return -(p * p.clamp_min(ENTROPY_EPS).log()).sum(dim=-1)


def code_probabilities(sq_dist: torch.Tensor, mode: str, temperature: float,
                       batch_mean=None) -> torch.Tensor:
    """Soft code assignment p (..., K) from squared distances ||z - e_k||^2; ``batch_mean``
    averages over the first axis (default: this tensor's rows; under DDP every rank's)."""
    if mode == "scaled":
        with torch.no_grad():
            gaps = sq_dist.mean(dim=-1) - sq_dist.amin(dim=-1)
            gap = (gaps.mean() if batch_mean is None
                   else batch_mean(gaps.reshape(-1, 1)).squeeze(0)).clamp_min(1e-6)
        logits = -sq_dist / (temperature * gap)
    elif mode == "fixed":
        logits = -sq_dist / temperature
    elif mode == "parity":
        logits = sq_dist.clamp_min(1e-12).sqrt() * temperature  # finite gradient at 0
    else:
        raise ValueError(f"diversity mode {mode!r}")
    return logits.softmax(dim=-1)


def diversity_loss(sq_dist: torch.Tensor, mode: str = "fixed",
                   temperature: float = 1.0, batch_mean=None) -> torch.Tensor:
    """-mean_l H(pbar_l), pbar_l the batch-mean code distribution at token position l.

    sq_dist: (B, L, K) squared distances of each token to each code. ``batch_mean`` takes
    the mean over the batch axis (default: over these B rows; under DDP over every rank's,
    `storm_bt.models.neural.distributed.mean_over_ranks`).
    """
    p = code_probabilities(sq_dist, mode, temperature, batch_mean)
    p_bar = p.mean(dim=0) if batch_mean is None else batch_mean(p)
    return -entropy(p_bar).mean()


def clip_loss(a: torch.Tensor, b: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Symmetric InfoNCE between paired rows of a and b (B, D); the diagonal is positive."""
    a, b = F.normalize(a, dim=-1), F.normalize(b, dim=-1)
    logits = (a @ b.T) * math.exp(temperature)
    target = torch.arange(a.shape[0], device=a.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


def gaussian_kl(mu1: torch.Tensor, logvar1: torch.Tensor, mu2: torch.Tensor,
                logvar2: torch.Tensor) -> torch.Tensor:
    """KL(N(mu1, e^lv1) || N(mu2, e^lv2)) of diagonal Gaussians, summed over the last axis."""
    return 0.5 * (logvar2 - logvar1 + (logvar1.exp() + (mu1 - mu2).pow(2)) / logvar2.exp()
                  - 1.0).sum(dim=-1)


def reconstruction_sse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-sample sum of squared errors (B,) over every axis but the first."""
    return (pred - target).pow(2).flatten(1).sum(dim=1)


def reconstruction_mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean of (pred - target)^2 over every element."""
    return (pred - target).pow(2).mean()


def gaussian_nll(mu: torch.Tensor, sigma: torch.Tensor, target: torch.Tensor,
                 mask: torch.Tensor) -> torch.Tensor:
    """Mean over the entries in mask of -log N(target; mu, sigma^2) (under DDP over every
    rank's entries, `count_per_rank`)."""
    w = mask.to(mu.dtype)
    sigma = sigma.clamp_min(1e-4)
    nll = 0.5 * math.log(2 * math.pi) + sigma.log() + (target - mu).pow(2) / (2 * sigma.pow(2))
    return (nll * w).sum() / count_per_rank(w.sum())


def ic_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor,
            eps: float = 1e-8) -> torch.Tensor:
    """1 - mean over rows of the Pearson correlation of pred and target (B, S) across the
    stocks in mask:

        corr_b = sum_s a_bs c_bs / sqrt(sum_s a_bs^2 sum_s c_bs^2),  a, c the masked,
        centred pred and target of row b.

    Rows with fewer than 2 labelled stocks, or whose labels do not vary, are left out (under
    DDP the mean runs over every rank's kept rows, `count_per_rank`). A row
    whose predictions do not vary (sum a^2 <= eps) counts as corr 0 and passes no gradient:
    the correlation's direction is undefined there, and a plain formula would give NaN.
    """
    w = mask.to(pred.dtype)
    n = w.sum(dim=1)
    def centred(v):
        return (v - (v * w).sum(dim=1, keepdim=True) / n.clamp_min(1.0)[:, None]) * w
    a, b = centred(pred), centred(target)
    var_a, var_b = a.pow(2).sum(1), b.pow(2).sum(1)
    defined = (var_a > eps) & (var_b > eps)
    ones = torch.ones_like(var_a)
    corr = torch.where(defined, (a * b).sum(1) / torch.where(defined, var_a * var_b, ones).sqrt(),
                       torch.zeros_like(var_a))
    keep = ((n >= 2) & (var_b > eps)).to(pred.dtype)
    return 1.0 - (corr * keep).sum() / count_per_rank(keep.sum())


def price_constraint_loss(prices: torch.Tensor, low: int, high: int) -> torch.Tensor:
    """mean relu(low - other) + mean relu(other - high) over the price-field axis (last).

    "other" is every field but low (first term) / but high (second term); the means run
    over all rows and those fields, as the official PriceConstraintEntropyLoss.
    """
    fields = torch.arange(prices.shape[-1], device=prices.device)
    lo, hi = prices[..., low:low + 1], prices[..., high:high + 1]
    below = F.relu(lo - prices[..., fields != low]).mean()
    above = F.relu(prices[..., fields != high] - hi).mean()
    return below + above
