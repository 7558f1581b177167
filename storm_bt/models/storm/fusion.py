"""CrossViT-style multiscale fusion of the CS and TS token sets (STORM_SPEC 2.3, D1).

Each of `depth` layers runs

    a <- Transformer_a(a),  b <- Transformer_b(b)           (pre-LN, own weights, final LN)
    repeat cross_depth times:
        a_0 <- a_0 + Attn(LN a_0 ; keys/values [LN a_0, b_1..])
        b_0 <- b_0 + Attn(LN b_0 ; keys/values [LN b_0, a_1..])

so only the first token of each branch reads the other branch, and the following layers'
self-attention spreads what it read. The encoders have dropped CLS, so the first token is
day 0 (CS) and (block 0, stock 0) (TS), as in the official code.
"""
from __future__ import annotations

import torch
from torch import nn

from storm_bt.models.storm.layers import Attention, TransformerStack, init_linear_and_norm


class FirstTokenCrossAttention(nn.Module):
    """x_0 (B, 1, d) attends to [LN x_0, other tokens] (B, 1 + N, d); returns the update."""

    def __init__(self, dim: int, heads: int, dim_head: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads, dim_head, qkv_bias=False)

    def forward(self, first: torch.Tensor, others: torch.Tensor) -> torch.Tensor:
        x = self.norm(first)
        return self.attn(x, context=torch.cat([x, others], dim=1))


class CrossViTFusion(nn.Module):
    def __init__(self, dim: int, depth: int = 2, self_depth: int = 2, cross_depth: int = 2,
                 heads: int = 4, dim_head: int = 8, mlp_dim: int = 256):
        super().__init__()
        self.layers = nn.ModuleList()
        for _ in range(depth):
            self.layers.append(nn.ModuleDict({
                "self_a": TransformerStack(dim, self_depth, heads, mlp_dim, dim_head, qkv_bias=False),
                "self_b": TransformerStack(dim, self_depth, heads, mlp_dim, dim_head, qkv_bias=False),
                "a_reads_b": nn.ModuleList(FirstTokenCrossAttention(dim, heads, dim_head)
                                           for _ in range(cross_depth)),
                "b_reads_a": nn.ModuleList(FirstTokenCrossAttention(dim, heads, dim_head)
                                           for _ in range(cross_depth)),
            }))
        self.apply(init_linear_and_norm)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """a (B, La, d), b (B, Lb, d) -> fused (a, b), same shapes."""
        for layer in self.layers:
            a, b = layer["self_a"](a), layer["self_b"](b)
            a0, a_rest, b0, b_rest = a[:, :1], a[:, 1:], b[:, :1], b[:, 1:]
            for a_reads_b, b_reads_a in zip(layer["a_reads_b"], layer["b_reads_a"]):
                a0 = a0 + a_reads_b(a0, b_rest)
                b0 = b0 + b_reads_a(b0, a_rest)
            a, b = torch.cat([a0, a_rest], dim=1), torch.cat([b0, b_rest], dim=1)
        return a, b
