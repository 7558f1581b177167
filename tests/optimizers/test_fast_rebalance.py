"""The K-factor risk model, the dual Newton solver against independent references, the
holding-horizon maths and the frozen-book summary."""
from __future__ import annotations

import cvxpy as cp
import numpy as np
import pandas as pd
import pytest
from scipy.optimize import minimize
from sklearn.covariance import LedoitWolf

from optimizers import (FactorQP, MeanVarianceOptimizer, book_change_summary, holding_horizon,
                        make_optimizer, rebalance_weights, risk_model, solve_factor_qp)


def _returns(t: int, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    market = rng.normal(0, 0.01, (t, 1)) * rng.uniform(0.5, 1.5, n)
    sector = rng.normal(0, 0.006, (t, 3)) @ rng.normal(0, 1, (3, n))
    return market + sector + rng.normal(0, 0.015, (t, n))


def _reference(p: FactorQP) -> np.ndarray:
    """The same problem as one plain cvxpy formulation (dense Σ, tight CLARABEL tolerances)."""
    n = len(p.mu)
    sigma = p.loadings @ p.loadings.T + np.diag(p.specific)
    sigma = 0.5 * (sigma + sigma.T) + 1e-14 * np.eye(n)
    w = cp.Variable(n)
    cons = [cp.sum(w) == p.budget, w >= p.lower, w <= p.upper]
    if p.gross_limit is not None:
        cons.append(cp.norm1(w) <= p.gross_limit)
    obj = p.risk_aversion * cp.quad_form(w, cp.psd_wrap(sigma)) - p.mu @ w \
        + p.turnover_penalty * cp.norm1(w - p.w_prev)
    cp.Problem(cp.Minimize(obj), cons).solve(solver="CLARABEL", tol_gap_abs=1e-13,
                                             tol_gap_rel=1e-13, tol_feas=1e-13)
    return w.value


def _random_problem(seed: int, long_short: bool) -> FactorQP:
    rng = np.random.default_rng(seed)
    n, t = int(rng.integers(8, 40)), int(rng.integers(20, 60))
    tradable = rng.random(n) > 0.15
    model = risk_model(_returns(t, n, seed), tradable, factors=int(rng.integers(2, 6)))
    cap = 0.3
    upper = np.where(tradable, cap, 0.0)
    w_prev = (rng.normal(0, 0.05, n) if long_short
              else np.where(tradable, rng.dirichlet(np.ones(n)), 0.0))
    return FactorQP(mu=np.where(tradable, rng.normal(0, 1e-3, n), 0.0), loadings=model.loadings,
                    specific=model.specific, risk_aversion=float(rng.choice([1.0, 5.0, 20.0])),
                    turnover_penalty=float(rng.choice([0.0, 2e-4, 1e-3])), w_prev=w_prev,
                    lower=-upper if long_short else np.zeros(n), upper=upper,
                    budget=0.0 if long_short else 1.0, gross_limit=0.6 if long_short else None)


@pytest.mark.parametrize("long_short", [False, True])
@pytest.mark.parametrize("seed", range(6))
def test_dual_newton_matches_a_reference_cvxpy_formulation(seed, long_short):
    p = _random_problem(seed, long_short)
    solution = solve_factor_qp(p)
    assert solution is not None
    ref = _reference(p)
    np.testing.assert_allclose(solution.weights, ref, atol=1e-4)
    assert p.objective(solution.weights) <= p.objective(ref) + 1e-10
    assert solution.weights.sum() == pytest.approx(p.budget, abs=1e-9)
    assert np.all(solution.weights >= p.lower - 1e-12) and np.all(solution.weights <= p.upper + 1e-12)
    if long_short:
        assert np.abs(solution.weights).sum() <= 0.6 + 1e-9


def test_dual_newton_matches_scipy_without_costs():
    rng = np.random.default_rng(11)
    n = 10
    model = risk_model(_returns(120, n, 11), np.ones(n, dtype=bool))
    sigma = model.covariance()
    mu = rng.normal(0, 2e-3, n)
    p = FactorQP(mu, model.loadings, model.specific, 5.0, 0.0, np.zeros(n), np.zeros(n),
                 np.full(n, 0.25), 1.0)
    got = solve_factor_qp(p).weights
    ref = minimize(lambda w: 5.0 * w @ sigma @ w - mu @ w, np.full(n, 1 / n),
                   jac=lambda w: 10.0 * sigma @ w - mu, bounds=[(0, 0.25)] * n, method="SLSQP",
                   constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1}],
                   options={"ftol": 1e-15, "maxiter": 1000})
    assert ref.success
    np.testing.assert_allclose(got, ref.x, atol=1e-5)


def test_newton_on_the_exact_factor_form_matches_a_dense_ledoit_wolf_reference():
    n, t = 60, 40  # more names than days: the exact model has T = 40 factor columns
    tradable = np.ones(n, dtype=bool)
    tradable[[3, 7]] = False
    r = _returns(t, n, 3)
    model = risk_model(r, tradable)
    mu = np.random.default_rng(3).normal(0, 1e-3, n)
    w_prev = np.where(tradable, 1.0 / tradable.sum(), 0.0)
    kwargs = dict(risk_aversion=5.0, max_weight=0.1, turnover_penalty=1e-3)
    fast = MeanVarianceOptimizer(n, **kwargs).weights(mu, model, tradable, w_prev)
    sigma = np.zeros((n, n))
    sigma[np.ix_(tradable, tradable)] = LedoitWolf().fit(r[:, tradable]).covariance_
    upper = np.where(tradable, 0.1, 0.0)
    dense = FactorQP(np.where(tradable, mu, 0.0), np.linalg.cholesky(sigma + 1e-12 * np.eye(n)),
                     np.zeros(n), 5.0, 1e-3, w_prev, np.zeros(n), upper, 1.0)
    np.testing.assert_allclose(fast, _reference(dense), atol=1e-4)
    cvx = MeanVarianceOptimizer(n, solver="cvxpy", **kwargs).weights(mu, model, tradable, w_prev)
    np.testing.assert_allclose(fast, cvx, atol=1e-4)


def test_k_factor_model_is_the_exact_model_when_k_covers_the_window():
    r = _returns(30, 50, 5)
    usable = np.ones(50, dtype=bool)
    exact = risk_model(r, usable)
    full = risk_model(r, usable, factors=30)
    np.testing.assert_allclose(full.covariance(), exact.covariance(), rtol=1e-10, atol=1e-16)
    np.testing.assert_allclose(exact.covariance(), LedoitWolf().fit(r).covariance_,
                               rtol=1e-6, atol=1e-12)
    mu = np.random.default_rng(5).normal(0, 1e-3, 50)
    opt = MeanVarianceOptimizer(50, max_weight=0.1, turnover_penalty=1e-3, solver="cvxpy")
    w_exact = opt.weights(mu, exact, usable, np.zeros(50))
    w_full = MeanVarianceOptimizer(50, max_weight=0.1, turnover_penalty=1e-3).weights(
        mu, full, usable, np.zeros(50))
    np.testing.assert_allclose(w_full, w_exact, atol=1e-4)


def test_k_factor_model_is_the_top_principal_components_with_exact_variances():
    r = _returns(30, 50, 6)
    usable = np.ones(50, dtype=bool)
    k = 4
    model = risk_model(r, usable, factors=k)
    lw = LedoitWolf().fit(r)
    delta = lw.shrinkage_
    x = r - r.mean(axis=0)
    u, s, vt = np.linalg.svd(x / np.sqrt(len(x)), full_matrices=False)  # independent PCA
    top = (vt[:k].T * s[:k] ** 2) @ vt[:k]
    np.testing.assert_allclose(model.loadings @ model.loadings.T, (1 - delta) * top,
                               rtol=1e-8, atol=1e-14)
    np.testing.assert_allclose(np.diag(model.covariance()), np.diag(lw.covariance_),
                               rtol=1e-8, atol=2e-10)  # + the 1e-10 jitter
    assert (model.specific > 0).all()


def test_factors_are_ignored_where_the_window_is_longer_than_the_universe():
    r = _returns(100, 12, 7)
    usable = np.ones(12, dtype=bool)
    np.testing.assert_allclose(risk_model(r, usable, factors=3).covariance(),
                               risk_model(r, usable).covariance(), rtol=1e-12)


def test_horizon_scaling_equals_an_amortised_cost():
    # h μ, h Σ and the one-off cost κ  <=>  μ, Σ and the cost κ / h per day held.
    rng = np.random.default_rng(8)
    dates = pd.bdate_range("2021-01-01", periods=200)
    tickers = [f"S{i}" for i in range(15)]
    rets = pd.DataFrame(_returns(200, 15, 8), index=dates, columns=tickers)
    preds = pd.DataFrame(rng.normal(size=(200, 15)), index=dates, columns=tickers)
    decisions = dates[80::5]
    assert holding_horizon(dates, decisions) == 5
    kappa = 2e-3
    scaled = rebalance_weights(preds, rets, decisions,
                               make_optimizer("mean-variance", 15, turnover_penalty=kappa))
    amortised = rebalance_weights(preds, rets, decisions,
                                  make_optimizer("mean-variance", 15, turnover_penalty=kappa / 5),
                                  horizon=1)
    one_day = rebalance_weights(preds, rets, decisions,
                                make_optimizer("mean-variance", 15, turnover_penalty=kappa),
                                horizon=1)
    # Equal problems; 1e-4 leaves room for a day solved by the cvxpy fallback.
    np.testing.assert_allclose(scaled.to_numpy(), amortised.to_numpy(), atol=1e-4)
    # Amortising lowers the cost per unit of expected return: the book trades more.
    assert (book_change_summary(scaled)["mean_turnover"]
            > book_change_summary(one_day)["mean_turnover"])


def test_book_change_summary_counts_changes_by_hand():
    dates = pd.bdate_range("2022-01-03", periods=5)
    w = pd.DataFrame([[0.5, 0.5], [0.5, 0.5], [0.6, 0.4], [0.6, 0.4], [0.6, 0.4]],
                     index=dates, columns=["A", "B"])
    summary = book_change_summary(w)
    assert summary["rebalances"] == 4 and summary["changed"] == 1
    assert summary["fraction_changed"] == pytest.approx(0.25)
    assert summary["mean_turnover"] == pytest.approx(0.1 / 4)
    assert summary["last_change"] == str(dates[2].date())
    assert not summary["frozen"]
    assert book_change_summary(w, frozen_below=0.5)["frozen"]
