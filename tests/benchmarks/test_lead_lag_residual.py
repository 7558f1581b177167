"""benchmarks/lead_lag_residual.py: the stacked inputs and the cross-fitted RankIC."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from lead_lag_residual import cross_fitted_ic, stacked_inputs  # noqa: E402


def test_the_inputs_are_the_score_then_the_market_times_the_characteristics():
    scores = np.array([[[1.0, np.nan]]]).reshape(1, 2)
    chars = np.array([[[2.0, 3.0], [4.0, 5.0]]])
    market = np.array([0.5])
    with_read = stacked_inputs(scores, chars, market, True)
    np.testing.assert_allclose(with_read[0], [[1.0, 1.0, 1.5], [0.0, 2.0, 2.5]])
    np.testing.assert_allclose(stacked_inputs(scores, chars, market, False)[0], [[1.0], [0.0]])


def test_a_planted_lead_lag_read_is_found_out_of_fold_and_the_score_alone_is_kept():
    """y = p + 2 m_t c_0 + noise: fitted on one fold and scored on the other, [p, m c] ranks
    better than p; with the read absent from y the two rank alike."""
    rng = np.random.default_rng(0)
    n_days, n_stocks = 300, 40
    p = rng.normal(size=(n_days, n_stocks))
    c = rng.normal(size=(n_days, n_stocks, 2))
    m = rng.normal(size=n_days)
    folds = [np.arange(0, 150), np.arange(150, 300)]
    dates = pd.bdate_range("2020-01-01", periods=n_days)
    valid = np.ones((n_days, n_stocks), dtype=bool)
    for planted, gain in ((2.0, 0.2), (0.0, None)):
        y = p + planted * m[:, None] * c[..., 0] + rng.normal(0, 1.0, (n_days, n_stocks))
        ic = {flag: cross_fitted_ic(stacked_inputs(p, c, m, flag), y, folds, valid,
                                    dates).mean() for flag in (False, True)}
        if gain:
            assert ic[True] > ic[False] + gain
        else:
            assert abs(ic[True] - ic[False]) < 0.01
