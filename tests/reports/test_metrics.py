"""reports.metrics against hand computations on tiny series."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from reports import metrics as M

DATES = pd.bdate_range("2021-01-04", periods=4)
# W: 1 -> 0.9 -> 0.945 -> 0.9639 -> 0.934983
R = pd.Series([-0.10, 0.05, 0.02, -0.03], index=DATES)
W_N = 0.9 * 1.05 * 1.02 * 0.97
MEAN = -0.015                      # (-0.10 + 0.05 + 0.02 - 0.03) / 4
VAR1 = 0.0129 / 3                  # squared deviations 0.007225+0.004225+0.001225+0.000225
VAR0 = 0.0129 / 4
DOWN = math.sqrt((0.01 + 0.0009) / 4)


def test_cumulative_wealth_is_product_of_growth():
    assert M.cumulative_wealth(R) == pytest.approx(0.934983)


def test_annual_return_is_compounded_over_252_days():
    assert M.annual_return(R) == pytest.approx(W_N ** (252 / 4) - 1)


def test_annual_volatility_uses_sample_std():
    assert M.annual_volatility(R) == pytest.approx(math.sqrt(VAR1 * 252))


def test_sharpe_is_annualised_mean_over_sample_std():
    assert M.sharpe(R) == pytest.approx(MEAN / math.sqrt(VAR1) * math.sqrt(252))


def test_sortino_uses_downside_deviation_over_all_days():
    assert M.downside_deviation(R) == pytest.approx(DOWN)
    assert M.sortino(R) == pytest.approx(MEAN / DOWN * math.sqrt(252))


def test_max_drawdown_includes_the_initial_value():
    # The first day's 10% loss from V_0 = 1 is the deepest drawdown.
    assert M.max_drawdown(R) == pytest.approx(0.10)
    assert M.max_drawdown(pd.Series([-0.2, 0.1])) == pytest.approx(0.2)
    assert M.drawdown_series(R).to_numpy() == pytest.approx(
        [0.10, 0.055, 0.0361, 1 - 0.934983])


def test_calmar_is_annual_return_over_max_drawdown():
    assert M.calmar(R) == pytest.approx((W_N ** 63 - 1) / 0.10)


def test_nan_returns_are_dropped():
    with_gap = pd.Series([np.nan, -0.10, 0.05, np.nan, 0.02, -0.03])
    assert M.performance_metrics(with_gap) == pytest.approx(M.performance_metrics(R))


def test_performance_metrics_collects_every_metric():
    out = M.performance_metrics(R)
    assert out["sharpe"] == pytest.approx(M.sharpe(R))
    assert out["max_drawdown"] == pytest.approx(0.10)
    assert out["n_days"] == 4
    assert "turnover" not in out


def test_empty_series_gives_nan_without_crashing():
    out = M.performance_metrics(pd.Series([], dtype=float))
    assert out["cumulative_wealth"] == 1.0 and out["max_drawdown"] == 0.0
    for key in ("annual_return", "annual_volatility", "sharpe", "sortino", "calmar"):
        assert math.isnan(out[key]), key
    assert all(math.isnan(v) for v in M.storm_coded_metrics(pd.Series([], dtype=float)).values())
    assert all(math.isnan(v) for v in M.trading_metrics(pd.Series([], dtype=float)).values())


def test_constant_series_has_zero_volatility_and_undefined_ratios():
    r = pd.Series(0.001, index=pd.bdate_range("2021-01-04", periods=30))
    out = M.performance_metrics(r)
    assert out["annual_volatility"] == 0.0
    assert out["max_drawdown"] == 0.0
    assert out["annual_return"] == pytest.approx(1.001 ** 252 - 1)
    for key in ("sharpe", "sortino", "calmar"):
        assert math.isnan(out[key]), key
    coded = M.storm_coded_metrics(r)
    assert coded["storm_vol"] == 0.0 and math.isnan(coded["storm_sr"])


def test_single_return_has_no_volatility():
    r = pd.Series([0.01])
    assert math.isnan(M.sharpe(r)) and math.isnan(M.annual_volatility(r))
    assert M.cumulative_wealth(r) == pytest.approx(1.01)


def test_trading_metrics_from_values_use_the_paper_names():
    values = pd.Series(100.0 * np.array([1.0, 0.9, 0.945, 0.9639, 0.934983]))
    out = M.trading_metrics(values)
    assert out["CW"] == pytest.approx(0.934983)
    assert out["APY"] == pytest.approx(0.934983 ** 63 - 1)
    assert out["MDD"] == pytest.approx(0.10)
    assert out["CR"] == pytest.approx((0.934983 ** 63 - 1) / 0.10)
    assert out["ASR"] == pytest.approx(MEAN / math.sqrt(VAR1) * math.sqrt(252))
    assert out["AVO"] == pytest.approx(math.sqrt(VAR1 * 252))


def test_trading_metrics_of_a_bad_start_value_are_nan():
    assert all(math.isnan(v) for v in M.trading_metrics(pd.Series([0.0, 1.0, 2.0])).values())


def test_storm_coded_metrics_follow_the_official_code():
    out = M.storm_coded_metrics(R)
    assert out["storm_arr"] == pytest.approx((W_N - 1) / 4 * 252)       # simple
    assert out["storm_sr"] == pytest.approx(MEAN * 2 / math.sqrt(VAR0))  # sqrt(N)=2, ddof 0
    assert out["storm_vol"] == pytest.approx(math.sqrt(VAR0))            # daily
    assert out["storm_dd"] == pytest.approx(0.035)                       # std of -0.10, -0.03
    assert out["storm_mdd"] == pytest.approx(0.03)                       # peak from W_1
    assert out["storm_cr"] == pytest.approx(MEAN * 252 / 0.03)
    assert out["storm_sor"] == pytest.approx(MEAN * 252 / 0.035)
    assert out["storm_cw"] == pytest.approx(W_N - 1)


def test_storm_mdd_ignores_a_first_day_loss_and_trading_sortino_uses_mdd():
    out = M.storm_coded_metrics(pd.Series([-0.2, 0.1]))
    assert out["storm_mdd"] == 0.0 and math.isnan(out["storm_cr"])
    coded = M.storm_coded_metrics(R, sortino_denominator="mdd")
    assert coded["storm_sor"] == pytest.approx(MEAN * 252 / 0.03)


def test_one_way_turnover_is_half_the_absolute_weight_change():
    w = pd.DataFrame({"a": [0.5, 0.5, 0.0], "b": [0.5, 0.25, 0.25], "c": [np.nan, 0.25, 0.75]},
                     index=DATES[:3])
    assert M.one_way_turnover(w).tolist() == pytest.approx([0.5, 0.25, 0.5])
    assert M.turnover(w) == pytest.approx(1.25 / 3)
    assert M.turnover(w, annualise=True) == pytest.approx(1.25 / 3 * 252)
    assert M.turnover(pd.Series([0.1, 0.3])) == pytest.approx(0.2)
    assert math.isnan(M.turnover(pd.Series([], dtype=float)))
    out = M.performance_metrics(R, turnover=w)
    assert out["turnover"] == pytest.approx(1.25 / 3)
    assert out["annual_turnover"] == pytest.approx(1.25 * 252 / 4)


def test_standard_metrics_agree_with_quantstats():
    qs_stats = pytest.importorskip("quantstats.stats")
    idx = pd.bdate_range("2020-01-01", periods=300)
    r = pd.Series(np.random.default_rng(7).normal(4e-4, 0.012, 300), index=idx)
    assert M.sharpe(r) == pytest.approx(qs_stats.sharpe(r))
    assert M.sortino(r) == pytest.approx(qs_stats.sortino(r))
    assert M.annual_volatility(r) == pytest.approx(qs_stats.volatility(r))
    assert M.max_drawdown(r) == pytest.approx(-qs_stats.max_drawdown(r))
    assert M.annual_return(r) == pytest.approx(qs_stats.cagr(r))
