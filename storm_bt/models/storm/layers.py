"""Building blocks of the STORM branches (STORM_SPEC 2.1, 2.2, 2.5).

- Stem. x (B, T, S, F) -> u_{t,s} = x_{t,s} W_stem (F -> F'), one per-day stock vector
  shared by both branches (the model owns it). No weight has a size that depends on S.
- Patching.
  CS: token_t = [mean_s u_{t,s} || std_s u_{t,s}] W_cs                    -> (B, T, d)
      (a set summary of the day: the same function for any number or subset of stocks);
      its decoder reconstructs the day's cross-sectional mean and std of each price field,
      target (B, T, 2P).
  TS: token_{s, j} = vec(v[j p .. j p + p - 1, s, :]) W_ts                -> (B S, T/p, d)
      with v = u (p F' -> d, D37) or v = x (p F -> d, the official embedding); each
      stock's blocks form its own sequence (stocks fold into the batch, attention is
      temporal, cost linear in S); the decoder maps each token to its p P prices
      (cheap equivalence (a) of section 11), unpatchified to (B, T, S, P).
- Separable positions: pos[t n_sp + s] = spatial[s] + temporal[t]; CLS has its own
  (both branches now use n_sp = 1: temporal positions only).
- Pre-LN block: x <- x + Attn(LN x); x <- x + MLP(LN x), MLP = d -> r d -> d with GELU.
- TokenTransformer (encoder and decoder alike):
  Linear(in -> d), prepend CLS, add positions, blocks, LN, Linear(d -> out), drop CLS.
Linear weights are xavier-uniform with zero bias, LayerNorm (1, 0), positions and CLS
trunc-normal(0.02).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def init_linear_and_norm(module: nn.Module) -> None:
    """xavier-uniform Linear weights, zero biases, LayerNorm (1, 0)."""
    if isinstance(module, nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


class Attention(nn.Module):
    """Multi-head scaled dot-product attention of x (B, N, dim) over a context (B, N', dim)
    (x itself when no context is given)."""

    def __init__(self, dim: int, heads: int, dim_head: int | None = None, qkv_bias: bool = True):
        super().__init__()
        self.heads = heads
        self.dim_head = dim_head or dim // heads
        inner = heads * self.dim_head
        self.to_q = nn.Linear(dim, inner, bias=qkv_bias)
        self.to_kv = nn.Linear(dim, 2 * inner, bias=qkv_bias)
        self.proj = nn.Linear(inner, dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        context = x if context is None else context
        b, n, _ = x.shape
        q = self.to_q(x).view(b, n, self.heads, self.dim_head).transpose(1, 2)
        k, v = self.to_kv(context).view(b, context.shape[1], 2, self.heads, self.dim_head) \
            .permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, n, self.heads * self.dim_head))


class FeedForward(nn.Sequential):
    """LN-free MLP dim -> hidden -> dim with GELU."""

    def __init__(self, dim: int, hidden: int):
        super().__init__(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))


class TransformerBlock(nn.Module):
    """Pre-LN block: x + Attn(LN x), then x + MLP(LN x); no dropout, no LayerScale."""

    def __init__(self, dim: int, heads: int, mlp_hidden: int, dim_head: int | None = None,
                 qkv_bias: bool = True):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads, dim_head, qkv_bias)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = FeedForward(dim, mlp_hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class TransformerStack(nn.Module):
    """`depth` pre-LN blocks followed by a final LayerNorm."""

    def __init__(self, dim: int, depth: int, heads: int, mlp_hidden: int,
                 dim_head: int | None = None, qkv_bias: bool = True):
        super().__init__()
        self.blocks = nn.ModuleList(TransformerBlock(dim, heads, mlp_hidden, dim_head, qkv_bias)
                                    for _ in range(depth))
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return self.norm(x)


class SeparablePositionalEmbedding(nn.Module):
    """Adds spatial[s] + temporal[t] to token t*n_space + s, and a class position to CLS."""

    def __init__(self, n_time: int, n_space: int, dim: int):
        super().__init__()
        self.n_time, self.n_space = n_time, n_space
        self.temporal = nn.Parameter(torch.empty(n_time, dim))
        self.spatial = nn.Parameter(torch.empty(n_space, dim))
        self.cls = nn.Parameter(torch.empty(1, dim))
        for p in (self.temporal, self.spatial, self.cls):
            nn.init.trunc_normal_(p, std=0.02)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (B, 1 + n_time*n_space, dim), CLS first."""
        grid = (self.temporal[:, None, :] + self.spatial[None, :, :]).flatten(0, 1)
        return tokens + torch.cat([self.cls, grid], dim=0)


class TokenTransformer(nn.Module):
    """Linear(in -> d), CLS, separable positions, pre-LN blocks, LN, Linear(d -> out),
    CLS dropped. The STORM encoder (out = d) and decoder (out = patch values) alike."""

    def __init__(self, in_dim: int, dim: int, out_dim: int, n_time: int, n_space: int,
                 depth: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.to_latent = nn.Linear(in_dim, dim)
        self.cls_token = nn.Parameter(torch.empty(1, 1, dim))
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        self.pos = SeparablePositionalEmbedding(n_time, n_space, dim)
        self.transformer = TransformerStack(dim, depth, heads, int(dim * mlp_ratio))
        self.head = nn.Linear(dim, out_dim)
        for m in (self.to_latent, self.transformer, self.head):
            m.apply(init_linear_and_norm)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (B, L, in_dim) -> (B, L, out_dim)."""
        h = self.to_latent(tokens)
        h = torch.cat([self.cls_token.expand(h.shape[0], -1, -1), h], dim=1)
        h = self.transformer(self.pos(h))
        return self.head(h[:, 1:])


def stock_stem(n_features: int, width: int) -> nn.Module:
    """The per-day stock stem Linear(F -> F') (identity when width is 0)."""
    if not width:
        return nn.Identity()
    stem = nn.Linear(n_features, width)
    stem.apply(init_linear_and_norm)
    return stem


class CrossSectionalPatching(nn.Module):
    """One token per day, a summary of the cross-section:

        c_t = [mean_s u || std_s u] W_cs                                  (queries = 0)
        c_t = [mean_s u || std_s u] W_cs + [p_1t || ... || p_mt] W_p      (queries = m)
        p_jt = sum_s a_jst u_st,   a_jst = softmax_s(w_j' u_st)

    Each p_jt is the stem of a soft portfolio of the day's stocks, weighted by a learned
    linear score w_j' u_st (a soft characteristic sort: p_jt holds a style portfolio's
    scaled features, its returns among them, which the equal-weighted moments cannot
    express). W_p starts at 0, so the untrained token is the moments' alone, and the new
    weights are drawn from a forked generator, so every other weight of the model draws the
    same numbers as without them.
    """

    n_space = 1

    def __init__(self, stem_dim: int, dim: int, queries: int = 0):
        super().__init__()
        self.embed = nn.Linear(2 * stem_dim, dim)
        self.apply(init_linear_and_norm)
        self.scores = self.pooled = None
        if queries:
            with torch.random.fork_rng():
                self.scores = nn.Linear(stem_dim, queries, bias=False)
                nn.init.xavier_uniform_(self.scores.weight)
                self.pooled = nn.Linear(queries * stem_dim, dim)
            nn.init.zeros_(self.pooled.weight)
            nn.init.zeros_(self.pooled.bias)

    @staticmethod
    def values_per_token(n_price: int) -> int:
        return 2 * n_price

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        """u (B, T, S, F') stem output -> (B, T, d)."""
        token = self.embed(cross_section_moments(u))
        if self.scores is None:
            return token
        return token + self.pooled(soft_portfolios(u, self.scores))

    @staticmethod
    def target(prices: torch.Tensor) -> torch.Tensor:
        """What the CS decoder reconstructs: (B, T, S, P) -> moments (B, T, 2P)."""
        return cross_section_moments(prices)

    @staticmethod
    def unpatchify(out: torch.Tensor, n_price: int) -> torch.Tensor:
        """(B, T, 2P) decoder output, already in the target's layout."""
        return out


def soft_portfolios(u: torch.Tensor, scores: nn.Linear) -> torch.Tensor:
    """(B, T, S, C) -> (B, T, m C): for each of the m scores w_j, sum_s a_js u_s with
    a_js = softmax_s(w_j' u_s) over the stocks of the day."""
    weights = scores(u).softmax(dim=2)                        # (B, T, S, m)
    return torch.einsum("btsm,btsc->btmc", weights, u).flatten(-2)


def cross_section_moments(u: torch.Tensor) -> torch.Tensor:
    """(B, T, S, C) -> (B, T, 2C): [mean over stocks || population std over stocks]."""
    mean = u.mean(dim=2)
    std = (u - mean[:, :, None]).pow(2).mean(dim=2).add(1e-6).sqrt()
    return torch.cat([mean, std], dim=-1)


def group_moments(u: torch.Tensor, groups: torch.Tensor, n_groups: int) -> torch.Tensor:
    """(B, T, S, C) and each stock's group (S,) in 0..G -> (G, B, T, 2C): for g = 1..G the
    [mean || population std] of u over the stocks of group g (0: no group, in none of them);
    zeros and sqrt(1e-6) for a group without a stock here."""
    member = F.one_hot(groups, n_groups + 1).to(u.dtype)                 # (S, G + 1)
    count = member.sum(dim=0).clamp_min(1.0)
    mean = torch.einsum("btsc,sg->bgtc", u, member) / count[:, None, None]  # (B, G+1, T, C)
    centred = u - mean[:, groups].permute(0, 2, 1, 3)                    # (B, T, S, C)
    var = torch.einsum("btsc,sg->bgtc", centred.pow(2), member) / count[:, None, None]
    out = torch.cat([mean, var.add(1e-6).sqrt()], dim=-1)[:, 1:]          # (B, G, T, 2C)
    return out.transpose(0, 1)


def stem_moments(mean: torch.Tensor, cov: torch.Tensor, weight: torch.Tensor | None = None,
                 bias: torch.Tensor | None = None) -> torch.Tensor:
    """The universe's [mean_s u || std_s u] (..., 2F') of a linear stem u = x W' + b (the
    identity without weight), from the per-date feature mean m (..., F) and population
    covariance C (..., F, F) over every stock: mean_s u = m W' + b, var_s u_j = w_j' C w_j.
    Equal to cross_section_moments(u) when the batch holds every stock."""
    if weight is None:
        mu, var = mean, cov.diagonal(dim1=-2, dim2=-1)
    else:
        mu = mean @ weight.T + (0.0 if bias is None else bias)
        var = ((cov @ weight.T) * weight.T).sum(dim=-2)
    return torch.cat([mu, var.clamp_min(0.0).add(1e-6).sqrt()], dim=-1)


class TimeSeriesPatching(nn.Module):
    """Per stock, one token per block of p days: (B, T, S, C) -> (B S, T/p, d), C the
    stem width F' or the raw feature count F."""

    n_space = 1

    def __init__(self, in_dim: int, patch: int, dim: int):
        super().__init__()
        self.patch = patch
        self.embed = nn.Linear(patch * in_dim, dim)
        self.apply(init_linear_and_norm)

    def values_per_token(self, n_price: int) -> int:
        return self.patch * n_price

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, T, S, C) -> (B S, T/p, d); row b S + s is stock s of sample b."""
        b, t, s, f = x.shape
        blocks = x.permute(0, 2, 1, 3).reshape(b * s, t // self.patch, self.patch * f)
        return self.embed(blocks)

    @staticmethod
    def target(prices: torch.Tensor) -> torch.Tensor:
        return prices

    def unpatchify(self, out: torch.Tensor, n_price: int, n_stocks: int) -> torch.Tensor:
        """(B S, T/p, p P) -> (B, T, S, P)."""
        bs, n_blocks, _ = out.shape
        grid = out.reshape(bs // n_stocks, n_stocks, n_blocks * self.patch, n_price)
        return grid.permute(0, 2, 1, 3)


def stocks_to_time_major(tokens: torch.Tensor, n_stocks: int) -> torch.Tensor:
    """(B S, J, d) per-stock tokens -> (B, J S, d), index j S + s (the official layout)."""
    bs, j, d = tokens.shape
    return tokens.reshape(bs // n_stocks, n_stocks, j, d).transpose(1, 2).reshape(
        bs // n_stocks, j * n_stocks, d)
