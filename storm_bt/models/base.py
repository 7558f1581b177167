"""The one interface every predictor implements.

A predictor is fitted on the train range (the valid range is for early stopping and model
selection only) and predicts, for each decision date t of a range, the next-day return
t -> t+1 of every ticker from data up to t:

    fit(data, split) -> self
    predict(data, start, end) -> DataFrame (date x ticker), NaN where a stock has no row at t
"""
from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np
import pandas as pd

from storm_bt.features.dataset import FeatureSet, Split


class Predictor(ABC):
    """Base class of all models: LightGBM, STORM and the neural baselines."""

    #: The registry name (``--model``).
    name: str = "predictor"

    @abstractmethod
    def fit(self, data: FeatureSet, split: Split) -> "Predictor":
        """Train on ``split.train``; use ``split.valid`` only for early stopping/selection."""

    @abstractmethod
    def predict(self, data: FeatureSet, start, end) -> pd.DataFrame:
        """Predicted next-day returns for decision dates in [start, end] (date x ticker)."""

    def config(self) -> dict:
        """The settings that define this model (recorded in config.json)."""
        return {"name": self.name}

    @staticmethod
    def frame(data: FeatureSet, ends: np.ndarray, values: np.ndarray) -> pd.DataFrame:
        """Wrap (N, S) predictions for dates ``data.dates[ends]``, NaN where not valid."""
        values = np.where(data.valid[ends], values, np.nan)
        return pd.DataFrame(values, index=data.dates[ends], columns=list(data.tickers))
