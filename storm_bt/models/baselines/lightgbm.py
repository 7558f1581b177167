"""LightGBM baseline: gradient-boosted trees on each stock-day's feature vector.

A training row is one (date t, stock s) of the train range with a known label; its inputs
are the causally scaled features x[t, s, :] and its target the next-day return y[t, s].
The number of trees is chosen by early stopping on the validation range (l2 loss); the
test range is never seen. Prediction: y_hat[t, s] = f(x[t, s, :]).
"""
from __future__ import annotations

import logging
import warnings
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from storm_bt.features.dataset import FeatureSet, Split
from storm_bt.errors import StormBtError
from storm_bt.models.base import Predictor

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LightGBMConfig:
    num_leaves: int = 31
    learning_rate: float = 0.03
    n_estimators: int = 400
    min_child_samples: int = 200
    subsample: float = 0.8
    colsample_bytree: float = 0.5
    reg_lambda: float = 1.0
    early_stopping_rounds: int = 40
    #: cap on training rows (a seeded random subset above it) to bound memory and time
    max_train_rows: int = 400_000
    num_threads: int = 2
    seed: int = 1337


class LightGBMPredictor(Predictor):
    """Pooled cross-sectional LightGBM regressor of the next-day return."""

    name = "lightgbm"

    def __init__(self, seed: int = 1337, **overrides) -> None:
        self.cfg = LightGBMConfig(seed=seed, **overrides)
        self.booster = None

    def config(self) -> dict:
        return {"name": self.name, **asdict(self.cfg)}

    def _rows(self, data: FeatureSet, start, end, rng: np.random.Generator | None):
        ends = data.sample_ends(start, end, history=1, labelled=True)
        t, s = np.nonzero(np.isfinite(data.labels[ends]) & data.valid[ends])
        t = ends[t]
        if rng is not None and len(t) > self.cfg.max_train_rows:
            keep = np.sort(rng.choice(len(t), self.cfg.max_train_rows, replace=False))
            t, s = t[keep], s[keep]
        return data.features[t, s, :], data.labels[t, s]

    def fit(self, data: FeatureSet, split: Split) -> "LightGBMPredictor":
        import lightgbm as lgb

        rng = np.random.default_rng(self.cfg.seed)
        x_train, y_train = self._rows(data, *split.train, rng)
        x_valid, y_valid = self._rows(data, *split.valid, None)
        if len(y_train) == 0 or len(y_valid) == 0:
            raise StormBtError("lightgbm: no labelled rows in the train or valid range; "
                               "check --train-start/--valid-start/--test-start")
        log.info("lightgbm: %d train rows, %d valid rows, %d features",
                 len(y_train), len(y_valid), x_train.shape[1])
        c = self.cfg
        model = lgb.LGBMRegressor(
            num_leaves=c.num_leaves, learning_rate=c.learning_rate, n_estimators=c.n_estimators,
            min_child_samples=c.min_child_samples, subsample=c.subsample, subsample_freq=1,
            colsample_bytree=c.colsample_bytree, reg_lambda=c.reg_lambda,
            n_jobs=c.num_threads, random_state=c.seed, deterministic=True,
            force_row_wise=True, verbose=-1)
        with warnings.catch_warnings():  # lightgbm >= 4.7 renames eval_set; older ones lack eval_X
            warnings.filterwarnings("ignore", message=".*eval_set.*is deprecated")
            model.fit(x_train, y_train, eval_set=[(x_valid, y_valid)], eval_metric="l2",
                      callbacks=[lgb.early_stopping(c.early_stopping_rounds, verbose=False)])
        self.booster = model
        log.info("lightgbm: best iteration %s", model.best_iteration_)
        return self

    def predict(self, data: FeatureSet, start, end) -> pd.DataFrame:
        if self.booster is None:
            raise RuntimeError("fit the model before predict")
        ends = data.date_index(start, end)
        d, s, f = len(ends), len(data.tickers), data.n_features
        flat = data.features[ends].reshape(d * s, f)
        values = self.booster.predict(flat).reshape(d, s)
        return self.frame(data, ends, values)
