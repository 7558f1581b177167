"""LSTM baseline: one LSTM shared by all stocks reads each stock's own feature window.

For stock s and a window ending on day t, with x[t-T+1..t, s, :] its T feature vectors,

    h_t = LSTM(x[t-T+1, s], ..., x[t, s])      (last hidden state of the top layer)
    y_hat[t, s] = w' h_t + b

trained with the mean squared error on the stocks whose next-day return is known, against
the raw return or (default) its cross-sectional z-score of the day.
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
class LSTMConfig:
    history: int = 64
    hidden: int = 64
    layers: int = 2
    dropout: float = 0.0
    #: fit the day's cross-sectional z-score of the label instead of the raw return
    zscore_labels: bool = True

    def __post_init__(self) -> None:
        checks.at_least(self, 1, "history", "hidden", "layers")
        checks.dropout_rate(self, "dropout")


TINY = LSTMConfig(history=32, hidden=32, layers=1)
SMALL = LSTMConfig(history=64, hidden=64, layers=2)
#: no official LSTM config exists: width 128 with the STORM paper's schedule (STORM_SPEC 4)
PAPER = LSTMConfig(history=64, hidden=128, layers=2)
#: 64 stocks cost 2.6-3.7 s a step on the S&P 500 (1 thread, load 4.5-5.2, measured):
#: 48 per step keep an S&P 500 epoch under 5 minutes
SAMPLING = {**PRESET_SAMPLING, "stocks_per_step": 48}
PRESETS = {
    "tiny": (TINY, TrainConfig(epochs=5, lr=1e-3, **SAMPLING)),
    "small": (SMALL, TrainConfig(epochs=15, lr=1e-3, **SAMPLING)),
    "paper": (PAPER, TrainConfig(epochs=1000, lr=1e-4, patience=None, **SAMPLING)),
}


class LSTMModel(ReturnRegressor):
    """Per-stock LSTM over time with a linear head: (B,T,S,F) -> (B,S)."""

    def __init__(self, config: LSTMConfig, dims: DataDims) -> None:
        super().__init__()
        self.config = config
        self.lstm = nn.LSTM(dims.n_features, config.hidden, num_layers=config.layers,
                            batch_first=True, dropout=config.dropout if config.layers > 1 else 0.0)
        self.head = nn.Linear(config.hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, (h, _) = self.lstm(per_stock_sequences(x))
        return self.head(h[-1]).view(x.shape[0], x.shape[2])


class LSTMPredictor(PresetTorchPredictor):
    name = "lstm"
    presets = PRESETS

    def make_model(self, config: LSTMConfig, dims: DataDims) -> nn.Module:
        return LSTMModel(config, dims)
