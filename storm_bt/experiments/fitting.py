"""Fit one registered model for one seed, timed and logged: the step every experiment shares.

The process is seeded first (`storm_bt.runtime.seed_everything`), so a model's result
depends only on its name, settings, seed and data.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from storm_bt.features.dataset import FeatureSet, Split
from storm_bt.models import ModelSettings, Predictor, make_predictor
from storm_bt.runtime import seed_everything

log = logging.getLogger(__name__)


@dataclass
class FittedModel:
    """A fitted predictor with its name, seed and fitting time (seconds)."""

    name: str
    seed: int
    predictor: Predictor
    fit_seconds: float


def fit_model(name: str, seed: int, settings: ModelSettings, data: FeatureSet,
              split: Split) -> FittedModel:
    """Seed, build and fit ``name`` on the train range (valid range for early stopping)."""
    seed_everything(seed)
    predictor = make_predictor(name, seed=seed, settings=settings)
    log.info("%s seed %d: fitting on %d tickers, %s .. %s", name, seed, len(data.tickers),
             *[d.date() for d in split.train])
    started = time.perf_counter()
    predictor.fit(data, split)
    return FittedModel(name, seed, predictor, time.perf_counter() - started)
