"""FactorVAE baseline (Duan et al., AAAI 2022; STORM_SPEC section 8): a dynamic factor
model learned as a VAE whose posterior sees the future returns and whose prior does not.

With e_s = GRU(LeakyReLU(W x[., s, :]))_T the latent feature of stock s (H numbers):

- factor encoder (posterior, training only): M portfolios a_m = softmax_s(W_p e_s)_m over
  the stocks with a known label, portfolio returns y_p = a' y (M), and K factors
  z ~ N(mu_post, sigma_post^2) with mu_post = W_mu y_p, sigma_post = softplus(W_sigma y_p);
- factor decoder: alpha_s ~ N(mu_alpha(e_s), sigma_alpha(e_s)^2), beta_s = W_beta e_s (K),
  y_s ~ N(mu_alpha_s + beta_s' mu_z, sigma_alpha_s^2 + (beta_s * beta_s)' sigma_z^2);
- factor predictor (prior, no label): K attention heads, head k with a learned query q_k,
  weights w_ks = relu(cos(q_k, W_k e_s)) / sum_s relu(...), h_k = sum_s w_ks W_v e_s, and
  (mu_prior_k, sigma_prior_k) = MLP(h_k).

loss = NLL(y | posterior decoder) (or its MSE on the mean) + gamma * KL(post || prior),
averaged over the batch; the label is the day's cross-sectional z-score by default.
Prediction (no label): y_hat_s = mu_alpha_s + beta_s' mu_prior.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as fn
from torch import nn

from storm_bt.models.neural.batch import Batch
from storm_bt.models.neural import config_checks as checks
from storm_bt.models.neural.predictor import DataDims, PresetTorchPredictor
from storm_bt.models.neural.training import PRESET_SAMPLING, TrainConfig
from storm_bt.models.neural.targets import masked_mse, per_stock_sequences, regression_target

_EPS = 1e-6


@dataclass(frozen=True)
class FactorVAEConfig:
    history: int = 64
    hidden: int = 64
    n_factors: int = 8
    n_portfolios: int = 10
    #: gamma, the weight of KL(posterior || prior)
    kl_weight: float = 1.0
    #: "nll" (Gaussian negative log-likelihood, the paper) or "mse" (on the decoder mean)
    recon: str = "nll"
    zscore_labels: bool = True

    def __post_init__(self) -> None:
        checks.at_least(self, 1, "history", "hidden", "n_factors", "n_portfolios")
        checks.not_negative(self, "kl_weight")
        checks.one_of(self, "recon", ("nll", "mse"))


TINY = FactorVAEConfig(history=32, hidden=32, n_factors=4, n_portfolios=8)
#: the official repo's config (STORM_SPEC 8): 8 factors, 10 portfolios; width 64 for CPU
SMALL = FactorVAEConfig(history=64, hidden=64, n_factors=8, n_portfolios=10)
#: the official config (STORM_SPEC 8): width 128, KL weight 1e-2, lr 2e-5, 500 epochs
PAPER = FactorVAEConfig(history=64, hidden=128, n_factors=8, n_portfolios=10, kl_weight=1e-2)
PRESETS = {
    "tiny": (TINY, TrainConfig(epochs=5, lr=1e-3, **PRESET_SAMPLING)),
    "small": (SMALL, TrainConfig(epochs=15, lr=5e-4, **PRESET_SAMPLING)),
    "paper": (PAPER, TrainConfig(epochs=500, lr=2e-5, patience=None, **PRESET_SAMPLING)),
}


def _mlp(n_in: int, n_hidden: int, n_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(n_in, n_hidden), nn.LeakyReLU(), nn.Linear(n_hidden, n_out))


def gaussian_kl(mu_q: torch.Tensor, sigma_q: torch.Tensor, mu_p: torch.Tensor,
                sigma_p: torch.Tensor) -> torch.Tensor:
    """KL(N(mu_q, sigma_q^2) || N(mu_p, sigma_p^2)) elementwise."""
    return (torch.log(sigma_p / sigma_q)
            + (sigma_q ** 2 + (mu_q - mu_p) ** 2) / (2 * sigma_p ** 2) - 0.5)


class FactorVAE(nn.Module):
    """Feature extractor, factor encoder / decoder / predictor: (B,T,S,F) -> (B,S)."""

    def __init__(self, config: FactorVAEConfig, dims: DataDims) -> None:
        super().__init__()
        if config.recon not in ("nll", "mse"):
            raise ValueError(f"recon must be 'nll' or 'mse', got {config.recon!r}")
        h, k, m = config.hidden, config.n_factors, config.n_portfolios
        self.config = config
        # feature extractor
        self.proj = nn.Sequential(nn.Linear(dims.n_features, h), nn.LeakyReLU())
        self.gru = nn.GRU(h, h, batch_first=True)
        # factor encoder (posterior)
        self.portfolio = nn.Linear(h, m)
        self.post_mu = nn.Linear(m, k)
        self.post_sigma = nn.Linear(m, k)
        # factor decoder
        self.alpha_hidden = nn.Sequential(nn.Linear(h, h), nn.LeakyReLU())
        self.alpha_mu = nn.Linear(h, 1)
        self.alpha_sigma = nn.Linear(h, 1)
        self.beta = nn.Linear(h, k)
        # factor predictor (prior)
        self.query = nn.Parameter(torch.randn(k, h) / math.sqrt(h))
        self.key = nn.Linear(h, h)
        self.value = nn.Linear(h, h)
        self.prior_mu = _mlp(h, h, 1)
        self.prior_sigma = _mlp(h, h, 1)

    def extract(self, x: torch.Tensor) -> torch.Tensor:
        """Latent features e (B, S, H): the GRU's last state over each stock's window."""
        _, h = self.gru(self.proj(per_stock_sequences(x)))
        return h[-1].view(x.shape[0], x.shape[2], -1)

    def posterior(self, e: torch.Tensor, y: torch.Tensor, mask: torch.Tensor):
        logits = self.portfolio(e).masked_fill(~mask.unsqueeze(-1), float("-inf"))
        weights = torch.softmax(logits, dim=1).nan_to_num(0.0)       # (B, S, M)
        y_p = torch.einsum("bsm,bs->bm", weights, y)
        return self.post_mu(y_p), fn.softplus(self.post_sigma(y_p)) + _EPS

    def prior(self, e: torch.Tensor, mask: torch.Tensor):
        keys, values = self.key(e), self.value(e)                     # (B, S, H)
        cos = torch.einsum("kh,bsh->bks", fn.normalize(self.query, dim=-1),
                           fn.normalize(keys, dim=-1))
        score = torch.relu(cos) * mask.unsqueeze(1).to(cos.dtype)
        weights = score / (score.sum(dim=-1, keepdim=True) + _EPS)   # (B, K, S)
        heads = torch.einsum("bks,bsh->bkh", weights, values)
        sigma = fn.softplus(self.prior_sigma(heads)).squeeze(-1) + _EPS
        return self.prior_mu(heads).squeeze(-1), sigma

    def decode(self, e: torch.Tensor, mu_z: torch.Tensor, sigma_z: torch.Tensor):
        """Mean and std (B, S) of the returns given factors N(mu_z, sigma_z^2)."""
        hidden = self.alpha_hidden(e)
        mu_alpha = self.alpha_mu(hidden).squeeze(-1)
        sigma_alpha = fn.softplus(self.alpha_sigma(hidden)).squeeze(-1) + _EPS
        beta = self.beta(e)                                            # (B, S, K)
        mu_y = mu_alpha + torch.einsum("bsk,bk->bs", beta, mu_z)
        var_y = sigma_alpha ** 2 + torch.einsum("bsk,bk->bs", beta ** 2, sigma_z ** 2)
        return mu_y, var_y.sqrt()

    def losses(self, batch: Batch) -> dict[str, torch.Tensor]:
        target = regression_target(batch, self.config.zscore_labels)
        mask = batch.label_mask
        e = self.extract(batch.x)
        mu_post, sigma_post = self.posterior(e, target, mask)
        mu_prior, sigma_prior = self.prior(e, mask)
        mu_y, sigma_y = self.decode(e, mu_post, sigma_post)
        if self.config.recon == "nll":
            nll = 0.5 * math.log(2 * math.pi) + torch.log(sigma_y) + \
                (target - mu_y) ** 2 / (2 * sigma_y ** 2)
            m = mask.to(nll.dtype)
            recon = (nll * m).sum() / m.sum().clamp_min(1.0)
        else:
            recon = masked_mse(mu_y, target, mask)
        kl = gaussian_kl(mu_post, sigma_post, mu_prior, sigma_prior).sum(dim=1).mean()
        return {"total": recon + self.config.kl_weight * kl, "recon": recon, "kl": kl}

    def predict(self, batch: Batch) -> torch.Tensor:
        e = self.extract(batch.x)
        mu_prior, sigma_prior = self.prior(e, batch.label_mask)
        mu_y, _ = self.decode(e, mu_prior, sigma_prior)
        return mu_y


class FactorVAEPredictor(PresetTorchPredictor):
    name = "factorvae"
    presets = PRESETS

    def make_model(self, config: FactorVAEConfig, dims: DataDims) -> nn.Module:
        return FactorVAE(config, dims)
