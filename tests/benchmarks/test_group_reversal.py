"""benchmarks/group_reversal.py: past returns and group means of the reversal check."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from group_reversal import group_means, past_returns  # noqa: E402


def test_past_returns_sum_the_k_returns_that_end_at_t_and_need_all_of_them():
    labels = np.array([[0.01, 0.02], [0.03, np.nan], [-0.02, 0.01], [0.05, 0.02]])
    out = past_returns(labels, 2)
    assert np.isnan(out[:2]).all()
    np.testing.assert_allclose(out[2], [0.04, np.nan])      # labels[0] + labels[1]
    np.testing.assert_allclose(out[3], [0.01, np.nan])
    np.testing.assert_allclose(past_returns(labels, 1)[3], [-0.02, 0.01])


def test_group_means_are_per_day_and_per_group_and_the_market_without_a_group():
    signal = np.array([[1.0, 3.0, 10.0, 20.0, np.nan], [2.0, 2.0, 0.0, 4.0, 6.0]])
    groups = np.array([1, 1, 2, 2, 0])
    out = group_means(signal, groups)
    np.testing.assert_allclose(out[0], [2.0, 2.0, 15.0, 15.0, 8.5])
    np.testing.assert_allclose(out[1], [2.0, 2.0, 2.0, 2.0, 2.8])
