"""benchmarks/state_conditioning.py: the day state, the interaction design and the ridge fit."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from state_conditioning import (STATE_NAMES, daily_ic, design, fit_ridge,  # noqa: E402
                                labelled_days, market_state, next_day_labels, ridge_scores,
                                standardise_state)


def _returns(n_days=120, n_stocks=9, seed=0):
    rng = np.random.default_rng(seed)
    r = rng.normal(0, 0.01, (n_days, n_stocks))
    r[0] = np.nan
    r[30:40, 3] = np.nan                                    # a stock without rows a while
    return r


def test_the_day_state_reads_returns_up_to_t_only():
    returns = _returns()
    state = market_state(returns)
    assert state.shape == (len(returns), len(STATE_NAMES))
    np.testing.assert_allclose(state[50, 0], np.nanmean(returns[50]))
    np.testing.assert_allclose(state[50, 1], np.nanmean(returns[46:51], axis=1).sum())
    cut = 70
    perturbed = returns.copy()
    perturbed[cut + 1:] = np.random.default_rng(1).normal(0, 0.05, perturbed[cut + 1:].shape)
    other = market_state(perturbed)
    np.testing.assert_array_equal(other[: cut + 1], state[: cut + 1])
    assert not np.allclose(other[cut + 1:], state[cut + 1:], equal_nan=True)


def test_the_state_is_scaled_by_the_training_days_alone():
    state = market_state(_returns())
    train = np.arange(30, 80)
    scaled = standardise_state(state, train)
    np.testing.assert_allclose(scaled[train].mean(axis=0), 0, atol=1e-9)
    later = state.copy()
    later[80:] *= 7.0
    np.testing.assert_array_equal(standardise_state(later, train)[:80], scaled[:80])


def test_the_design_is_x_then_each_state_times_x():
    x = np.arange(6.0).reshape(3, 2)
    s = np.array([2.0, -1.0])
    z = design(x, s)
    np.testing.assert_array_equal(z, np.hstack([x, 2 * x, -x]))
    np.testing.assert_array_equal(design(x, None), x)


def test_labels_are_next_day_returns_z_scored_and_days_keep_their_label_inside_the_range():
    returns = _returns()
    y = next_day_labels(returns)
    row = returns[11]
    np.testing.assert_allclose(y[10], (row - row.mean()) / row.std())
    dates = pd.bdate_range("2020-01-01", periods=len(returns))
    days = labelled_days(dates, y, dates[20], dates[29], first=5)
    assert days[0] == 20 and days[-1] == 28                  # day 29's label is day 30's


def test_the_ridge_finds_a_planted_state_dependent_weight_and_ranks_better_with_it():
    """y = x_0 (1 + 2 s_t) + noise: the interaction model recovers (1, 0, 2, 0) and beats
    the constant mix on later days; with the state left out it cannot."""
    rng = np.random.default_rng(0)
    n_days, n_stocks = 400, 50
    x = rng.normal(size=(n_days, n_stocks, 2)).astype(np.float32)
    s = rng.normal(size=(n_days, 1))
    y = x[..., 0] * (1 + 2 * s) + rng.normal(0, 0.5, (n_days, n_stocks))
    train, later = np.arange(300), np.arange(300, 400)
    beta = fit_ridge(x, y, s, train, (0.0,))[0.0]
    np.testing.assert_allclose(beta, [1, 0, 2, 0], atol=0.05)
    const = fit_ridge(x, y, None, train, (0.0,))[0.0]
    dates = pd.bdate_range("2020-01-01", periods=n_days)
    valid = np.ones((n_days, n_stocks), dtype=bool)
    with_state = daily_ic(ridge_scores(x, s, beta, later, valid), y, later, dates).mean()
    without = daily_ic(ridge_scores(x, None, const, later, valid), y, later, dates).mean()
    assert with_state > without + 0.2
