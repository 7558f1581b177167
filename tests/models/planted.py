"""A planted-signal feature set for fast, deterministic training tests: noise features
whose feature 5 carries the next-day return."""
from __future__ import annotations

import numpy as np
import pandas as pd

from storm_bt.features.dataset import FeatureSet, Split


def planted_feature_set(seed: int = 0, n_days: int = 320, n_stocks: int = 8,
                        n_features: int = 6) -> FeatureSet:
    """Noise features; the next-day return is 1% x feature 5 of the day plus 0.5% noise."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n_days, n_stocks, n_features)).astype(np.float32)
    y = (0.01 * x[:, :, 5] + 0.005 * rng.standard_normal((n_days, n_stocks))).astype(np.float32)
    y[-1] = np.nan
    prices = ["open", "high", "low", "close", "adj_close"]
    return FeatureSet(
        dates=pd.bdate_range("2015-01-01", periods=n_days),
        tickers=tuple(f"S{i}" for i in range(n_stocks)),
        feature_names=prices + [f"f{i}" for i in range(5, n_features)], price_names=prices,
        features=x, price_mean=np.zeros((n_days, n_stocks, 5), np.float32),
        price_std=np.ones((n_days, n_stocks, 5), np.float32), labels=y,
        valid=np.ones((n_days, n_stocks), bool), fingerprint="planted")


def uneven_feature_set(n_stocks: int = 12) -> FeatureSet:
    """A planted set with 8 features whose stocks have different levels and spreads, so that
    a subset of stocks has other cross-sectional moments than the whole universe."""
    data = planted_feature_set(n_stocks=n_stocks, n_features=8)
    rng = np.random.default_rng(1)
    data.features = (data.features * rng.uniform(0.5, 2.0, (1, n_stocks, 1))
                     + rng.normal(0.0, 1.0, (1, n_stocks, 1))).astype(np.float32)
    return data


def planted_split(data: FeatureSet) -> Split:
    d = data.dates
    return Split(d[0], d[200], d[260], d[-1])
