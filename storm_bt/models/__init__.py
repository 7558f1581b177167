"""Predictors behind one interface (`Predictor`) and the `--model` registry."""
from __future__ import annotations

from storm_bt.errors import StormBtError
from storm_bt.models.base import Predictor

#: name -> "module:Class" (imported lazily so torch loads only when a torch model is used).
REGISTRY: dict[str, str] = {
    "lightgbm": "storm_bt.models.lightgbm_model:LightGBMPredictor",
    "lstm": "storm_bt.models.lstm:LSTMPredictor",
    "transformer": "storm_bt.models.transformer:TransformerPredictor",
    "factorvae": "storm_bt.models.factorvae:FactorVAEPredictor",
    "storm": "storm_bt.models.storm_predictor:StormPredictor",
    "storm-ts": "storm_bt.models.storm_predictor:StormTSPredictor",
    "storm-cs": "storm_bt.models.storm_predictor:StormCSPredictor",
}


def make_predictor(name: str, **kwargs) -> Predictor:
    """Build the predictor registered as `name` with keyword settings."""
    import importlib

    if name not in REGISTRY:
        raise StormBtError(f"unknown model {name!r}; choose one of {', '.join(sorted(REGISTRY))}")
    module, cls = REGISTRY[name].split(":")
    return getattr(importlib.import_module(module), cls)(**kwargs)


__all__ = ["REGISTRY", "Predictor", "make_predictor"]
