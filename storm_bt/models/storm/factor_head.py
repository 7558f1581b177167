"""FactorVAE-style factor head: posterior, prior and alpha/beta return decoder (STORM_SPEC 2.6).

Phi (B, M, D) are the factor tokens; every MLP is Linear -> LeakyReLU -> Linear.

    posterior  W = softmax_s(MLP_a(Phi))  (B, M, S)     one long-only portfolio per token,
               r = W y                    (B, M)        stocks without a label get weight 0
               [mu_post || logvar_post] = MLP_b(r)      M -> H -> 2M
    prior      h = MHA(Phi, Phi, Phi)     self-attention over the M tokens of each sample
               [mu_prior, logvar_prior] = MLP_c(h)      D -> H -> 2 per token   (D7 fixed)
    returns    alpha: [mu_a, logvar_a] = MLP_e(MLP_d(Phi)^T)   (B, S, M) -> (B, S, 2)
               beta = MLP_f(Phi)^T                              (B, S, M)
               mu_y = beta mu_z + mu_a,  sigma_y = sqrt(sigma_a^2 + (beta o beta) sigma_z^2)

logvars are clamped to [-30, 20], sigma = exp(logvar / 2).
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from storm_bt.models.storm.losses import LOGVAR_RANGE


def mlp(n_in: int, hidden: int, n_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(n_in, hidden), nn.LeakyReLU(), nn.Linear(hidden, n_out))


class Gaussian(NamedTuple):
    """A diagonal Gaussian by mean and (clamped) log-variance."""

    mu: torch.Tensor
    logvar: torch.Tensor

    @classmethod
    def from_moments(cls, mu: torch.Tensor, logvar: torch.Tensor) -> "Gaussian":
        return cls(mu, logvar.clamp(*LOGVAR_RANGE))

    @property
    def std(self) -> torch.Tensor:
        return torch.exp(0.5 * self.logvar)


class FactorHead(nn.Module):
    def __init__(self, n_factors: int, factor_dim: int, n_stocks: int, hidden: int,
                 prior_heads: int):
        super().__init__()
        self.portfolio = mlp(factor_dim, hidden, n_stocks)             # MLP_a
        self.posterior_moments = mlp(n_factors, hidden, 2 * n_factors)  # MLP_b
        self.prior_attention = nn.MultiheadAttention(factor_dim, prior_heads, batch_first=True)
        self.prior_moments = mlp(factor_dim, hidden, 2)                # MLP_c
        self.alpha_features = mlp(factor_dim, hidden, n_stocks)        # MLP_d
        self.alpha_moments = mlp(n_factors, hidden, 2)                 # MLP_e
        self.beta = mlp(factor_dim, hidden, n_stocks)                  # MLP_f

    def posterior(self, phi: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> Gaussian:
        """q(z | Phi, y): phi (B, M, D), y (B, S), mask (B, S) -> Gaussian over (B, M)."""
        logits = self.portfolio(phi).masked_fill(~mask[:, None, :], -1e9)
        returns = (logits.softmax(dim=-1) * y[:, None, :]).sum(dim=-1)
        mu, logvar = self.posterior_moments(returns).chunk(2, dim=-1)
        return Gaussian.from_moments(mu, logvar)

    def prior(self, phi: torch.Tensor) -> Gaussian:
        """p(z | Phi): phi (B, M, D) -> Gaussian over (B, M); no label, no cross-sample mixing."""
        h, _ = self.prior_attention(phi, phi, phi, need_weights=False)
        mu, logvar = self.prior_moments(h).unbind(dim=-1)
        return Gaussian.from_moments(mu, logvar)

    def returns(self, phi: torch.Tensor, z: Gaussian) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu_y, sigma_y), each (B, S), of y = beta z + alpha."""
        mu_a, logvar_a = self.alpha_moments(self.alpha_features(phi).transpose(1, 2)).unbind(-1)
        alpha = Gaussian.from_moments(mu_a, logvar_a)
        beta = self.beta(phi).transpose(1, 2)
        mu_y = (beta @ z.mu[:, :, None]).squeeze(-1) + alpha.mu
        var_y = alpha.std.pow(2) + (beta.pow(2) @ z.std.pow(2)[:, :, None]).squeeze(-1)
        return mu_y, var_y.sqrt()
