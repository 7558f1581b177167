"""Predictors behind one interface (`Predictor`) and the model registry.

- `storm_bt.models.base`: the `Predictor` interface (fit on train, predict a date x ticker frame).
- `storm_bt.models.registry`: model name -> class, label and presets; `make_predictor`.
- `storm_bt.models.neural`: the torch predictor, training loop and batches.
- `storm_bt.models.baselines`: LightGBM, LSTM, Transformer, FactorVAE.
- `storm_bt.models.storm`: STORM and its ablations.
"""
from __future__ import annotations

from storm_bt.models.base import Predictor
from storm_bt.models.registry import (MODEL_NAMES, MODELS, NEURAL_MODELS, PRESET_NAMES, ModelSettings,
                                      ModelSpec, make_predictor, model_presets, model_spec)

__all__ = ["MODELS", "MODEL_NAMES", "NEURAL_MODELS", "PRESET_NAMES", "ModelSettings", "ModelSpec",
           "Predictor", "make_predictor", "model_presets", "model_spec"]
