"""Result tables (`reports.tables`): cells, the factor summary and the trading tables."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from reports.tables import (IMPROVEMENT, TRADING_METRICS, factor_summary, improvement,
                            mean_cell, trading_summary)


def test_a_cell_is_the_mean_with_the_std_or_the_standard_error():
    values = [0.01, 0.02, 0.06]
    sd = np.std(values, ddof=1)
    assert mean_cell(values) == f"{np.mean(values):.4f} ± {sd:.4f}"
    assert mean_cell(values, spread="se") == f"{np.mean(values):.4f} ± {sd / np.sqrt(3):.4f}"
    assert mean_cell([0.5]) == "0.5000"
    assert mean_cell([float("nan"), float("nan")]) == "nan"
    assert mean_cell([0.1, 0.2], decimals=2, scale=100, suffix="%") == "15.00 ± 7.07%"


def test_the_factor_summary_keeps_the_model_order_and_counts_seeds():
    table = pd.DataFrame({"model": ["lstm", "lstm", "storm"], "seed": [1, 2, 1],
                          "IC": [0.01, 0.03, 0.02], "ICIR": [0.1, 0.2, 0.3],
                          "RankIC": [0.02, 0.04, 0.01], "RankICIR": [0.1, 0.1, 0.1],
                          "Q5_Q1": [0.0, 0.001, 0.002]})
    summary = factor_summary(table, spread="se")
    assert list(summary.index) == ["lstm", "storm"]
    assert summary.loc["lstm", "seeds"] == 2 and summary.loc["storm", "RankIC"] == "0.0100"
    assert summary.loc["lstm", "RankIC"] == f"0.0300 ± {np.std([0.02, 0.04], ddof=1) / np.sqrt(2):.4f}"
    # Q5_Q1 in basis points a day: a spread of a few 1e-4 used to show as "± 0.0000"
    assert summary.loc["lstm", "Q5_Q1 (bp/day)"] == "5.00 ± 5.00"
    assert summary.loc["storm", "Q5_Q1 (bp/day)"] == "20.00"


def test_improvement_is_relative_to_the_best_baseline_in_the_right_direction():
    cols = pd.MultiIndex.from_tuples([("AAPL", "APY"), ("AAPL", "MDD"), ("AAPL", "ASR")])
    means = pd.DataFrame([[0.10, 0.30, 0.5],    # buy-and-hold
                          [0.20, 0.25, -0.4],   # lstm
                          [0.90, 0.01, 9.0],    # storm-ts: an ablation, never "the baseline"
                          [0.25, 0.20, -0.2]],  # storm
                         index=["buy-and-hold", "lstm", "storm-ts", "storm"], columns=cols)
    imp = improvement(means)
    assert imp[("AAPL", "APY")] == pytest.approx(100 * (0.25 - 0.20) / 0.20)
    assert imp[("AAPL", "MDD")] == pytest.approx(100 * (0.25 - 0.20) / 0.25)  # lower is better
    assert imp[("AAPL", "ASR")] == pytest.approx(100 * (-0.2 - 0.5) / 0.5)
    assert improvement(means.drop(index="storm")).isna().all()
    # a baseline that never held the stock (MDD 0) is no "best" for the risk metrics
    cash = pd.DataFrame([[0.0, 0.0, np.nan]], index=["sac"], columns=cols)
    imp = improvement(pd.concat([means, cash]))
    assert imp[("AAPL", "MDD")] == pytest.approx(100 * (0.25 - 0.20) / 0.25)
    assert imp[("AAPL", "APY")] == pytest.approx(100 * (0.25 - 0.20) / 0.20)


def test_summary_cells_are_mean_and_std_over_seeds():
    rows = [("buy-and-hold", "AAPL", s, 0.1, 1.3, 0.5, 0.8, 0.2, 0.25) for s in (1, 2)]
    rows += [("storm", "AAPL", 1, 0.12, 1.4, 0.6, 1.0, 0.10, 0.20),
             ("storm", "AAPL", 2, 0.18, 1.6, 1.0, 1.2, 0.30, 0.30)]
    first, second, means = trading_summary(
        pd.DataFrame(rows, columns=["model", "ticker", "seed", *TRADING_METRICS]))
    assert first.loc["STORM", ("AAPL", "APY")] == \
        f"{15.0:.2f} ± {np.std([12.0, 18.0], ddof=1):.2f}%"
    assert means.loc["storm", ("AAPL", "CW")] == pytest.approx(1.5)
    # STORM's APY mean 0.15 vs buy-and-hold's 0.10: +50 %; its MDD 0.20 equals the best: 0
    assert first.loc[IMPROVEMENT, ("AAPL", "APY")] == "+50.00"
    assert second.loc[IMPROVEMENT, ("AAPL", "MDD")] == "+0.00"
    assert list(first.index) == ["Buy&Hold", "STORM", IMPROVEMENT]
