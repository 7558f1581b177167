"""Cross-branch fusion of the CS day tokens and the per-stock TS tokens (D1, linear in S).

With c (B, T, d) the CS day tokens and u (B S, J, d) the TS tokens of every stock, each of
`depth` layers runs (pre-LN, residual):

    u_{s,j} <- u_{s,j} + Attn(LN u_{s,j} ; keys/values LN c_1..c_T)      TS reads the market
    ubar_j   = mean_s u_{s,j}                                           pooled TS summary
    c_t     <- c_t + Attn(LN c_t ; keys/values LN ubar_1..ubar_J)       CS reads the stocks
    u <- u + MLP(LN u),  c <- c + MLP(LN c)                            (with mlp=True)

With mlp=False (fusion_mlp=False) a layer is the two cross reads alone. With gated=True
(fusion="gated") every residual update above is multiplied by tanh(a), one scalar a per
update and layer, initialised at 0 (the tanh-gated cross-attention of Flamingo): the fusion
starts as the identity, so the dual model starts from its branches as they are, and the
label's gradient on a decides how much each view takes from the other.

Every TS token attends to the T day tokens of its own sample only, so the cost is
O(B S J T d), linear in S (the official CrossViT fusion runs self-attention over all
(T/p) S TS tokens, quadratic in S). The TS queries of a sample are laid side by side
against that sample's keys, so the day tokens are never copied per stock.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from storm_bt.models.storm.layers import FeedForward, init_linear_and_norm


class StocksReadMarket(nn.Module):
    """u (B S, J, d) attends to c (B, T, d) of its own sample; returns the update."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads, self.dim_head = heads, dim // heads
        self.norm_u, self.norm_c = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, dim)
        self.to_kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, u: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        b, t, d = c.shape
        bs, j, _ = u.shape
        s = bs // b
        h, dh = self.heads, self.dim_head
        # queries of all stocks of a sample side by side: (B, h, S J, dh)
        q = self.to_q(self.norm_u(u)).reshape(b, s * j, h, dh).transpose(1, 2)
        k, v = self.to_kv(self.norm_c(c)).reshape(b, t, 2, h, dh).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)               # (B, h, S J, dh)
        return self.proj(out.transpose(1, 2).reshape(bs, j, d))


class MarketReadsStocks(nn.Module):
    """c (B, T, d) attends to the stock-pooled TS tokens ubar (B, J, d); returns the update."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.norm_c, self.norm_u = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)

    def forward(self, c: torch.Tensor, pooled: torch.Tensor) -> torch.Tensor:
        kv = self.norm_u(pooled)
        out, _ = self.attn(self.norm_c(c), kv, kv, need_weights=False)
        return out


class BranchFusion(nn.Module):
    #: the residual updates of a layer, in the order their gates are stored
    UPDATES = ("ts_reads_cs", "cs_reads_ts", "mlp_u", "mlp_c")

    def __init__(self, dim: int, depth: int = 1, heads: int = 4, mlp_ratio: float = 4.0,
                 gated: bool = False, mlp: bool = True):
        super().__init__()
        hidden = int(dim * mlp_ratio)
        #: the updates this fusion has (UPDATES, or the two cross reads without the MLPs)
        self.updates = self.UPDATES if mlp else self.UPDATES[:2]

        def layer() -> nn.ModuleDict:
            modules = {"ts_reads_cs": StocksReadMarket(dim, heads),
                       "cs_reads_ts": MarketReadsStocks(dim, heads)}
            if mlp:
                modules.update(norm_u=nn.LayerNorm(dim), mlp_u=FeedForward(dim, hidden),
                               norm_c=nn.LayerNorm(dim), mlp_c=FeedForward(dim, hidden))
            return nn.ModuleDict(modules)

        self.layers = nn.ModuleList(layer() for _ in range(depth))
        self.apply(init_linear_and_norm)
        #: a (depth, len(updates)) gate logits, tanh(a) scales each update; None = ungated
        self.gates = nn.Parameter(torch.zeros(depth, len(self.updates))) if gated else None

    def _gate(self, i: int, name: str, update: torch.Tensor) -> torch.Tensor:
        if self.gates is None:
            return update
        return torch.tanh(self.gates[i, self.updates.index(name)]) * update

    def gate_values(self) -> dict[str, float]:
        """gate_<update>: tanh(a) of each update, the mean over layers (0 = closed)."""
        values = torch.tanh(self.gates.detach()).mean(dim=0)
        return {f"gate_{name}": float(v) for name, v in zip(self.updates, values)}

    def forward(self, c: torch.Tensor, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """c (B, T, d) CS tokens, u (B S, J, d) TS tokens -> fused (c, u), same shapes."""
        b = c.shape[0]
        for i, layer in enumerate(self.layers):
            u = u + self._gate(i, "ts_reads_cs", layer["ts_reads_cs"](u, c))
            pooled = u.reshape(b, -1, *u.shape[1:]).mean(dim=1)
            c = c + self._gate(i, "cs_reads_ts", layer["cs_reads_ts"](c, pooled))
            if "mlp_u" not in layer:
                continue
            u = u + self._gate(i, "mlp_u", layer["mlp_u"](layer["norm_u"](u)))
            c = c + self._gate(i, "mlp_c", layer["mlp_c"](layer["norm_c"](c)))
        return c, u
