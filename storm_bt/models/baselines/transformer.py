"""Transformer baseline: a temporal transformer encoder shared by all stocks.

Each stock's window x[t-T+1..t, s, :] becomes T tokens u_k = W x_k + p_k (learned positions
p), passed through L pre-LayerNorm encoder blocks (self-attention over the T days, then a
GELU MLP). The last day's token, after a final LayerNorm, gives

    y_hat[t, s] = w' LN(u_T^(L)) + b

trained like the LSTM baseline: masked MSE against the raw or z-scored next-day return.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from storm_bt.models.neural import config_checks as checks
from storm_bt.models.neural.predictor import DataDims, PresetTorchPredictor
from storm_bt.models.neural.training import PRESET_SAMPLING, TrainConfig
from storm_bt.models.neural.targets import ReturnRegressor, per_stock_sequences


@dataclass(frozen=True)
class TransformerConfig:
    history: int = 64
    d_model: int = 64
    heads: int = 4
    layers: int = 2
    mlp_ratio: int = 4
    dropout: float = 0.1
    zscore_labels: bool = True

    def __post_init__(self) -> None:
        checks.at_least(self, 1, "history", "d_model", "heads", "layers", "mlp_ratio")
        checks.divisible(self, "d_model", "heads")
        checks.dropout_rate(self, "dropout")


TINY = TransformerConfig(history=32, d_model=32, heads=2, layers=1)
SMALL = TransformerConfig(history=64, d_model=64, heads=4, layers=2)
#: no official Transformer config exists: width 128 with the STORM paper's schedule (STORM_SPEC 4)
PAPER = TransformerConfig(history=64, d_model=128, heads=4, layers=2)
#: 64 stocks cost 7.5 s a step on the S&P 500 (1 thread, load 3, measured; 64-day full
#: attention per stock): 16 per step keep an S&P 500 epoch under 5 minutes
SAMPLING = {**PRESET_SAMPLING, "stocks_per_step": 16}
PRESETS = {
    "tiny": (TINY, TrainConfig(epochs=5, lr=1e-3, **SAMPLING)),
    "small": (SMALL, TrainConfig(epochs=15, lr=5e-4, **SAMPLING)),
    "paper": (PAPER, TrainConfig(epochs=1000, lr=1e-4, patience=None, **SAMPLING)),
}


class TemporalTransformer(ReturnRegressor):
    """Per-stock transformer encoder over time with a linear head: (B,T,S,F) -> (B,S)."""

    def __init__(self, config: TransformerConfig, dims: DataDims) -> None:
        super().__init__()
        self.config = config
        self.embed = nn.Linear(dims.n_features, config.d_model)
        self.position = nn.Parameter(torch.zeros(1, config.history, config.d_model))
        nn.init.trunc_normal_(self.position, std=0.02)
        block = nn.TransformerEncoderLayer(
            config.d_model, config.heads, dim_feedforward=config.mlp_ratio * config.d_model,
            dropout=config.dropout, activation="gelu", batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(block, config.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(config.d_model)
        self.head = nn.Linear(config.d_model, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, s, _ = x.shape
        u = self.encoder(self.embed(per_stock_sequences(x)) + self.position[:, -t:])
        return self.head(self.norm(u[:, -1])).view(b, s)


class TransformerPredictor(PresetTorchPredictor):
    name = "transformer"
    presets = PRESETS

    def make_model(self, config: TransformerConfig, dims: DataDims) -> nn.Module:
        return TemporalTransformer(config, dims)
