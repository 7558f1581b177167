"""Factor head shared across stocks (FactorVAE-style): posterior, prior, alpha/beta decoder.

Inputs: the market tokens Phi (B, M, D) (M = CS day tokens + stock-pooled TS tokens, a
count that does not depend on S) and one embedding per stock e (B, S, E) built from that
stock's own tokens. Every MLP is Linear -> LeakyReLU -> Linear; H is the hidden width.

    m = LN(MLP_m(Phi)) (B, M, H),   h_s = LN(MLP_s(e_s)) (B, S, H)
    h_s <- h_s + Attn(h_s ; m)                        each stock reads the market tokens
    [h_s <- h_s + Attn(LN h_s ; LN h_1..h_S)]         with peers: each stock reads the
                                                      stocks of its own sample (same dates)
    posterior  W_{k,s} = softmax_s((m_k W_q)(h_s W_k)' / sqrt H)   one long-only portfolio
               per market token over the stocks (stocks without a label get weight 0),
               r = W y (B, M),  [mu_post || logvar_post] = MLP_b(r)      M -> H -> 2M
    prior      g = m + MHA(m, m, m)                   self-attention over the M tokens (D7)
               [mu_prior, logvar_prior] = MLP_c(g)    H -> H -> 2 per token
    returns    [mu_a, logvar_a] = MLP_alpha(h_s),  beta_s = MLP_beta(h_s) (M numbers)
               mu_y = beta mu_z + mu_a (+ w'c_s, or (w + V zbar)'c_s)
               sigma_y = sqrt(sigma_a^2 + (beta o beta) sigma_z^2)

With `peers` (StormConfig.peer_attention) each stock's embedding also attends over the
stocks of its own sample, the day's cross-section: a stock-level cross-sectional read (how a
stock stands among its peers), where the CS day tokens describe the market as a whole. Its
output projection starts at 0, so the head starts as without it. Its cost is O(B S^2 H), the
only term quadratic in S, on one H-wide vector per stock (at S = 501, 4 heads: a 501 x 501
attention map per head and window).

With `n_linear` = K > 0 each stock also carries K characteristics c_s (B, S, K) that enter
its expected return through one linear read w'c_s alone (w starts at 0), not through h_s.
With `state_dim` = d > 0 as well, that read's weights move with the day: the CS branch's
token of the window's last day zbar (B, d) gives w_b = w + V zbar_b (V (K, d) starts at 0),
so the day's market can re-weight the characteristics (the only way a day-level input moves
a day's ranking: a common shift or scale of every score leaves the ranks as they were).

No weight has a size that depends on S: the same head scores any number of stocks (with
peers, a stock's score then depends on which other stocks are scored beside it).
logvars are clamped to [-30, 20], sigma = exp(logvar / 2).
"""
from __future__ import annotations

import math
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


class Embedded(NamedTuple):
    """Market tokens m (B, M, H) and stock embeddings h (B, S, H) in the head's width;
    with a linear read, the stocks' characteristics c (B, S, K), and with a day-state read,
    the day token zbar (B, d) that sets its weights."""

    market: torch.Tensor
    stocks: torch.Tensor
    characteristics: torch.Tensor | None = None
    day_state: torch.Tensor | None = None


class StocksReadPeers(nn.Module):
    """h (B, S, H) -> each stock's update from every stock of its own sample:
    Attn(LN h_s ; LN h_1..h_S), with the output projection at 0 at first."""

    def __init__(self, hidden: int, heads: int):
        super().__init__()
        self.norm = nn.LayerNorm(hidden)
        self.attention = nn.MultiheadAttention(hidden, heads, batch_first=True)
        nn.init.zeros_(self.attention.out_proj.weight)
        nn.init.zeros_(self.attention.out_proj.bias)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        n = self.norm(h)
        return self.attention(n, n, n, need_weights=False)[0]


class FactorHead(nn.Module):
    def __init__(self, n_factors: int, factor_dim: int, stock_dim: int, hidden: int,
                 heads: int, n_linear: int = 0, peers: bool = False, state_dim: int = 0):
        super().__init__()
        self.hidden = hidden
        self.market_embed = nn.Sequential(mlp(factor_dim, hidden, hidden), nn.LayerNorm(hidden))
        self.stock_embed = nn.Sequential(mlp(stock_dim, hidden, hidden), nn.LayerNorm(hidden))
        self.stock_reads_market = nn.MultiheadAttention(hidden, heads, batch_first=True)
        self.portfolio_query = nn.Linear(hidden, hidden)
        self.portfolio_key = nn.Linear(hidden, hidden)
        self.posterior_moments = mlp(n_factors, hidden, 2 * n_factors)   # MLP_b
        self.prior_attention = nn.MultiheadAttention(hidden, heads, batch_first=True)
        self.prior_moments = mlp(hidden, hidden, 2)                       # MLP_c
        self.alpha = mlp(hidden, hidden, 2)
        self.beta = mlp(hidden, hidden, n_factors)
        self.linear_alpha = None
        if n_linear:
            self.linear_alpha = nn.Linear(n_linear, 1, bias=False)
            nn.init.zeros_(self.linear_alpha.weight)
        # built last, so that every other weight draws what it drew without it
        self.stocks_read_peers = StocksReadPeers(hidden, heads) if peers else None
        self.linear_state = None
        if n_linear and state_dim:                      # after it, for the same reason
            self.linear_state = nn.Linear(state_dim, n_linear, bias=False)
            nn.init.zeros_(self.linear_state.weight)

    def embed(self, phi: torch.Tensor, stocks: torch.Tensor,
              characteristics: torch.Tensor | None = None,
              day_state: torch.Tensor | None = None) -> Embedded:
        """phi (B, M, D) market tokens, stocks (B, S, E) stock features (and, with a linear
        read, characteristics (B, S, K); with a day-state read, the day token (B, d))
        -> Embedded."""
        m = self.market_embed(phi)
        h = self.stock_embed(stocks)
        h = h + self.stock_reads_market(h, m, m, need_weights=False)[0]
        if self.stocks_read_peers is not None:
            h = h + self.stocks_read_peers(h)
        return Embedded(m, h, characteristics if self.linear_alpha is not None else None,
                        day_state if self.linear_state is not None else None)

    def posterior(self, emb: Embedded, y: torch.Tensor, mask: torch.Tensor) -> Gaussian:
        """q(z | Phi, y): y (B, S), mask (B, S) -> Gaussian over (B, M)."""
        logits = self.portfolio_query(emb.market) @ self.portfolio_key(emb.stocks).transpose(1, 2)
        logits = (logits / math.sqrt(self.hidden)).masked_fill(~mask[:, None, :], -1e9)
        returns = (logits.softmax(dim=-1) * y[:, None, :]).sum(dim=-1)
        mu, logvar = self.posterior_moments(returns).chunk(2, dim=-1)
        return Gaussian.from_moments(mu, logvar)

    def prior(self, emb: Embedded) -> Gaussian:
        """p(z | Phi) -> Gaussian over (B, M); no label, no cross-sample mixing."""
        m = emb.market
        g = m + self.prior_attention(m, m, m, need_weights=False)[0]
        mu, logvar = self.prior_moments(g).unbind(dim=-1)
        return Gaussian.from_moments(mu, logvar)

    def returns(self, emb: Embedded, z: Gaussian) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu_y, sigma_y), each (B, S), of y = beta z + alpha."""
        mu_a, logvar_a = self.alpha(emb.stocks).unbind(-1)
        alpha = Gaussian.from_moments(mu_a, logvar_a)
        beta = self.beta(emb.stocks)                                   # (B, S, M)
        mu_y = (beta @ z.mu[:, :, None]).squeeze(-1) + alpha.mu
        if self.linear_state is not None:                              # (w + V zbar)'c
            weights = self.linear_alpha.weight + self.linear_state(emb.day_state)   # (B, K)
            mu_y = mu_y + (emb.characteristics * weights[:, None, :]).sum(dim=-1)
        elif self.linear_alpha is not None:
            mu_y = mu_y + self.linear_alpha(emb.characteristics).squeeze(-1)
        var_y = alpha.std.pow(2) + (beta.pow(2) @ z.std.pow(2)[:, :, None]).squeeze(-1)
        return mu_y, var_y.sqrt()
