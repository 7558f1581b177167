"""benchmarks/valid_every_stock.py: the daily validation RankIC and the paired differences."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models"))
from planted import planted_feature_set, planted_split  # noqa: E402
from valid_every_stock import daily_valid_rank_ic, over_seeds, paired  # noqa: E402


class _Oracle:
    """Scores = the label (plus a multiple of noise): RankIC 1 with no noise."""

    history = 32

    def __init__(self, data, noise: float):
        self.data, self.noise = data, noise

    def predict(self, data, start, end):
        idx = data.date_index(start, end)
        rng = np.random.default_rng(0)
        values = data.labels[idx] + self.noise * rng.standard_normal(data.labels[idx].shape)
        return pd.DataFrame(values, index=data.dates[idx], columns=list(data.tickers))


def test_the_validation_days_are_the_labelled_ones_and_an_oracle_scores_one():
    data = planted_feature_set()
    split = planted_split(data)
    exact = daily_valid_rank_ic(_Oracle(data, 0.0), data, split)
    ends = data.sample_ends(*split.valid, 32, labelled=True)
    assert list(exact.index) == list(data.dates[ends])
    assert exact.min() == pytest.approx(1.0)
    assert daily_valid_rank_ic(_Oracle(data, 0.05), data, split).mean() < 0.9


def test_differences_are_paired_by_seed_and_day_and_summarised_over_seeds():
    days = pd.bdate_range("2020-01-01", periods=4)
    daily = {("a", 1): pd.Series([0.1, 0.2, 0.3, 0.4], days),
             ("a", 2): pd.Series([0.0, 0.0, 0.0, 0.0], days),
             ("b", 1): pd.Series([0.2, 0.3, 0.4, 0.5], days),
             ("b", 2): pd.Series([0.1, 0.1, np.nan, 0.1], days),
             ("b", 3): pd.Series([1.0, 1.0, 1.0, 1.0], days)}   # no seed-3 reference
    pairs = paired(daily, "a")
    assert list(pairs["seed"]) == [1, 2]
    np.testing.assert_allclose(pairs["minus reference"], [0.1, 0.1])
    summary = over_seeds(pairs).loc["b"]
    assert summary["seeds"] == 2 and summary["mean"] == pytest.approx(0.1)
    assert summary["se"] == pytest.approx(0.0, abs=1e-12) and summary["ahead"] == 2
