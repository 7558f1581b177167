"""Optimizers: risk models against sklearn, the cvxpy problem against scipy, constraints,
the penalties' effects, solver fallback, top-k dropout rules and no look-ahead."""
from __future__ import annotations

import warnings

import cvxpy as cp
import numpy as np
import pandas as pd
import pytest
from scipy.optimize import minimize
from sklearn.covariance import LedoitWolf

from optimizers import (MeanVarianceOptimizer, TopkDropout, expected_returns,
                        ledoit_wolf_covariance, make_optimizer, rebalance_weights, risk_model)
from storm_bt.errors import StormBtError


@pytest.fixture
def returns():
    rng = np.random.default_rng(7)
    common = rng.normal(0, 0.01, size=(252, 1))
    return common + rng.normal(0, 0.015, size=(252, 12))


def test_ledoit_wolf_matches_sklearn(returns):
    np.testing.assert_allclose(ledoit_wolf_covariance(returns),
                               LedoitWolf().fit(returns).covariance_, rtol=1e-10, atol=1e-14)


def test_ledoit_wolf_with_gaps_is_positive_definite(returns):
    gappy = returns.copy()
    gappy[np.random.default_rng(1).random(gappy.shape) < 0.2] = np.nan
    sigma = ledoit_wolf_covariance(gappy)
    assert np.isfinite(sigma).all() and np.linalg.eigvalsh(sigma).min() > 0


@pytest.mark.parametrize("n_rows", [252, 8])  # n <= T: Cholesky form; n > T: factor form
def test_risk_model_reproduces_the_covariance(returns, n_rows):
    window = returns[-n_rows:]
    usable = np.ones(12, dtype=bool)
    usable[3] = False
    model = risk_model(window, usable)
    assert model.loadings.shape[1] == min(11, n_rows)
    expected = LedoitWolf().fit(window[:, usable]).covariance_
    got = model.covariance()
    np.testing.assert_allclose(got[np.ix_(usable, usable)], expected, rtol=1e-6, atol=1e-12)
    assert not got[3].any() and not got[:, 3].any()


def _objective(w, mu, sigma, gamma, kappa, w_prev):
    return mu @ w - gamma * w @ sigma @ w - kappa * np.abs(w - w_prev).sum()


def test_long_only_solution_matches_scipy(returns):
    mu = np.linspace(-0.002, 0.003, 12)
    model = risk_model(returns, np.ones(12, dtype=bool))
    sigma = model.covariance()
    opt = MeanVarianceOptimizer(12, risk_aversion=5.0, max_weight=0.3, turnover_penalty=0.0)
    w = opt.weights(mu, model, np.ones(12, dtype=bool), np.zeros(12))
    ref = minimize(lambda x: -_objective(x, mu, sigma, 5.0, 0.0, np.zeros(12)), np.full(12, 1 / 12),
                   bounds=[(0, 0.3)] * 12, constraints=[{"type": "eq", "fun": lambda x: x.sum() - 1}],
                   method="SLSQP", options={"ftol": 1e-14, "maxiter": 500})
    assert ref.success
    assert _objective(w, mu, sigma, 5.0, 0, 0) == pytest.approx(-ref.fun, rel=1e-6, abs=1e-9)
    np.testing.assert_allclose(w, ref.x, atol=1e-3)


def test_long_only_constraints_and_untradable_names(returns):
    rng = np.random.default_rng(3)
    tradable = np.ones(12, dtype=bool)
    tradable[[2, 5]] = False
    opt = MeanVarianceOptimizer(12, risk_aversion=1.0, max_weight=0.15, turnover_penalty=1e-3)
    w = opt.weights(rng.normal(0, 0.01, 12), risk_model(returns, tradable), tradable, np.zeros(12))
    assert w.sum() == pytest.approx(1.0, abs=1e-9)
    assert (w >= 0).all() and (w <= 0.15 + 1e-7).all()
    assert w[2] == 0 and w[5] == 0


def test_cap_is_raised_when_too_few_names_can_trade(returns):
    tradable = np.zeros(12, dtype=bool)
    tradable[:4] = True
    opt = MeanVarianceOptimizer(12, max_weight=0.1)
    w = opt.weights(np.full(12, 0.001), risk_model(returns, tradable), tradable, np.zeros(12))
    assert w.sum() == pytest.approx(1.0, abs=1e-9)
    np.testing.assert_allclose(w[:4], 0.25, atol=1e-6)


def test_long_short_is_dollar_neutral_within_gross_limit(returns):
    mu = np.linspace(-0.01, 0.01, 12)
    opt = MeanVarianceOptimizer(12, risk_aversion=0.1, max_weight=0.4, turnover_penalty=0.0,
                                long_short=True, gross_limit=1.5)
    w = opt.weights(mu, risk_model(returns, np.ones(12, dtype=bool)), np.ones(12, dtype=bool),
                    np.zeros(12))
    assert w.sum() == pytest.approx(0.0, abs=1e-7)
    assert np.abs(w).sum() <= 1.5 + 1e-6 and np.abs(w).max() <= 0.4 + 1e-6
    assert w[-1] > 0 > w[0]


def test_turnover_penalty_lowers_turnover(returns):
    rng = np.random.default_rng(5)
    model = risk_model(returns, np.ones(12, dtype=bool))
    everyone = np.ones(12, dtype=bool)
    w_prev = np.full(12, 1 / 12)
    mu = rng.normal(0, 0.002, 12)
    moves = []
    for kappa in (0.0, 1e-3, 1e-2):
        opt = MeanVarianceOptimizer(12, risk_aversion=2.0, max_weight=0.3, turnover_penalty=kappa)
        moves.append(np.abs(opt.weights(mu, model, everyone, w_prev) - w_prev).sum())
    assert moves[0] > moves[1] > moves[2] - 1e-9
    assert moves[2] < 1e-6  # a cost above any gain: stay put


def test_risk_aversion_lowers_variance(returns):
    model = risk_model(returns, np.ones(12, dtype=bool))
    sigma = model.covariance()
    mu = np.linspace(0, 0.002, 12)
    variances = []
    for gamma in (0.1, 10.0, 1000.0):
        opt = MeanVarianceOptimizer(12, risk_aversion=gamma, max_weight=0.5, turnover_penalty=0)
        w = opt.weights(mu, model, np.ones(12, dtype=bool), np.zeros(12))
        variances.append(w @ sigma @ w)
    assert variances[0] > variances[1] > variances[2]


def test_the_problem_is_built_once(returns):
    opt = MeanVarianceOptimizer(12, solver="cvxpy")
    model = risk_model(returns, np.ones(12, dtype=bool))
    opt.weights(np.full(12, 0.001), model, np.ones(12, dtype=bool), np.zeros(12))
    problem = opt.problem
    for shift in range(3):
        opt.weights(np.linspace(0, 0.001 * shift, 12), model, np.ones(12, dtype=bool), np.zeros(12))
    assert opt.problem is problem and opt.solves == 4 and problem.is_dpp()


def test_failed_solves_keep_the_previous_weights(returns, monkeypatch):
    opt = MeanVarianceOptimizer(12, solver="cvxpy")
    model = risk_model(returns, np.ones(12, dtype=bool))
    opt.weights(np.full(12, 0.001), model, np.ones(12, dtype=bool), np.zeros(12))
    tried = []

    def fail(*args, solver=None, **kwargs):
        tried.append(solver)
        raise cp.error.SolverError("boom")

    monkeypatch.setattr(opt.problem, "solve", fail)
    w_prev = np.full(12, 1 / 12)
    tradable = np.ones(12, dtype=bool)
    tradable[0] = False
    w = opt.weights(np.full(12, 0.001), model, tradable, w_prev)
    assert tried == ["CLARABEL", "OSQP"] and opt.failures == 1
    assert w[0] == 0 and np.allclose(w[1:], 1 / 12)


def test_a_reduced_accuracy_answer_is_kept_and_counted_not_warned(returns, monkeypatch):
    opt = MeanVarianceOptimizer(12, solver="cvxpy")
    model = risk_model(returns, np.ones(12, dtype=bool))
    everyone, mu = np.ones(12, dtype=bool), np.linspace(0, 0.002, 12)
    accurate = opt.weights(mu, model, everyone, np.zeros(12))
    solve = opt.problem.solve

    def reduced_accuracy(*args, **kwargs):   # what cvxpy does when CLARABEL stops early
        result = solve(*args, **kwargs)
        opt.problem._status = cp.OPTIMAL_INACCURATE
        warnings.warn("Solution may be inaccurate. Try another solver, ...", UserWarning)
        return result

    monkeypatch.setattr(opt.problem, "solve", reduced_accuracy)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        w = opt.weights(mu, model, everyone, np.zeros(12))
    assert not [c for c in caught if "inaccurate" in str(c.message)]
    assert opt.inaccurate == 1 and opt.failures == 0
    np.testing.assert_allclose(w, accurate)


def test_topk_dropout_rules():
    opt = TopkDropout(k=3, n_drop=1)
    everyone = np.ones(6, dtype=bool)
    w0 = opt.weights(np.array([6, 5, 4, 3, 2, 1.0]), None, everyone, np.zeros(6))
    np.testing.assert_allclose(w0, [1 / 3, 1 / 3, 1 / 3, 0, 0, 0])
    # The ranking reverses: k - n_drop = 2 held names stay (the best-ranked, 2 and 1), 5 comes in.
    w1 = opt.weights(np.array([1, 2, 3, 4, 5, 6.0]), None, everyone, w0)
    assert set(np.flatnonzero(w1)) == {1, 2, 5}
    # A held name that cannot trade is sold even beyond n_drop.
    tradable = everyone.copy()
    tradable[[1, 2]] = False
    w2 = opt.weights(np.array([1, 2, 3, 4, 5, 6.0]), None, tradable, w1)
    assert w2[1] == 0 and w2[2] == 0 and np.count_nonzero(w2) == 3


def test_expected_returns_follow_grinold():
    scores = np.array([1.0, 2.0, 3.0, np.nan])
    vol = np.array([0.01, 0.02, 0.03, 0.04])
    tradable = np.array([True, True, True, False])
    mu = expected_returns(np.nan_to_num(scores), vol, tradable, ic=0.1)
    z = np.array([-1.0, 0.0, 1.0]) / np.std([1.0, 2.0, 3.0])
    np.testing.assert_allclose(mu, [0.1 * 0.01 * z[0], 0.0, 0.1 * 0.03 * z[2], 0.0])


def test_weights_ignore_data_after_their_date(returns):
    dates = pd.bdate_range("2020-01-01", periods=252)
    tickers = [f"S{i}" for i in range(12)]
    rets = pd.DataFrame(returns, index=dates, columns=tickers)
    preds = pd.DataFrame(np.random.default_rng(2).normal(size=(252, 12)), index=dates, columns=tickers)
    decisions = dates[100::10]
    base = rebalance_weights(preds, rets, decisions, make_optimizer("mean-variance", 12),
                             lookback=60, min_history=30)
    t = dates[170]
    rets2, preds2 = rets.copy(), preds.copy()
    rets2.loc[rets2.index > t] *= 3.0
    preds2.loc[preds2.index > t] = -preds2.loc[preds2.index > t]
    other = rebalance_weights(preds2, rets2, decisions, make_optimizer("mean-variance", 12),
                              lookback=60, min_history=30)
    pd.testing.assert_frame_equal(base.loc[:t], other.loc[:t])
    assert not np.allclose(base.loc[t:].iloc[1:], other.loc[t:].iloc[1:])


def test_make_optimizer_rejects_unknown_names():
    assert isinstance(make_optimizer("topk", 5, k=2, n_drop=1), TopkDropout)
    with pytest.raises(StormBtError, match="unknown optimizer 'magic'"):
        make_optimizer("magic", 5)
