"""Risk models from trailing daily returns: Ledoit-Wolf shrinkage, exact or with K factors.

With X the T x n matrix of demeaned daily returns of the n usable assets (a missing return
is set to its column mean, i.e. 0 after demeaning), the sample covariance is S = XᵀX / T and
the Ledoit-Wolf estimate (sklearn's shrinkage intensity δ) is

    Σ = (1 - δ) S + δ m I,        m = trace(S) / n.

Every model here has the form Σ = B Bᵀ + diag(d) with d > 0 on the usable assets, so the
optimiser never forms the n x n matrix:

- exact, n <= T:   S = V Λ Vᵀ (eigen-decomposition),  B = V √((1 - δ) Λ)   (n columns),
                   d = δ m;
- exact, n > T:    B = √((1 - δ) / T) Xᵀ   (T columns),  d = δ m   (S = XᵀX / T exactly);
- K factors, n > T (`factors=K < T`, a statistical factor model, the PCA of the estimate):
                   X Xᵀ / T = U Λ Uᵀ,  B = √((1 - δ) / T) Xᵀ U_K   (the top K principal
                   components of S, scaled by 1 - δ),  d_i = Σ_ii - ‖B_i‖²,
  so each asset keeps its Ledoit-Wolf variance exactly, the K largest directions of
  co-movement are kept and the rest of S's off-diagonal part is dropped. With K >= T it is
  the exact model. Where n <= T the exact form is already small and `factors` is ignored.

δ itself needs only the smaller Gram matrix (XᵀX or XXᵀ, same Frobenius norm), so no form
costs more than O(min(n, T)² max(n, T)). A tiny `jitter` is added to d so that a degenerate
window (δ = 0) still gives a positive definite Σ.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg


@dataclass(frozen=True)
class RiskModel:
    """Σ = loadings @ loadings.T + diag(specific) over all N assets (0 rows for unusable ones).

    Attributes:
        loadings: (N, m) matrix B.
        specific: (N,) non-negative idiosyncratic variances d.
    """

    loadings: np.ndarray
    specific: np.ndarray

    def covariance(self) -> np.ndarray:
        """The dense N x N matrix (for inspection and tests)."""
        return self.loadings @ self.loadings.T + np.diag(self.specific)

    def scaled(self, horizon: float) -> "RiskModel":
        """The covariance of `horizon`-day returns, h Σ (independent days)."""
        return RiskModel(np.sqrt(horizon) * self.loadings, horizon * self.specific)


def _demeaned(returns: np.ndarray) -> np.ndarray:
    """Columns minus their NaN-mean, NaN set to 0 (a missing day adds no co-movement)."""
    x = np.asarray(returns, dtype=np.float64)
    finite = np.isfinite(x)
    if not len(x):
        return np.where(finite, x, 0.0)
    count = finite.sum(axis=0)
    total = np.where(finite, x, 0.0).sum(axis=0)
    mean = np.divide(total, count, out=np.full(x.shape[1], np.nan), where=count > 0)
    centred = x - mean
    return np.where(np.isfinite(centred), centred, 0.0)


def _gram(x: np.ndarray) -> np.ndarray:
    """The smaller of XᵀX (n <= T) and XXᵀ (n > T)."""
    return x.T @ x if x.shape[1] <= x.shape[0] else x @ x.T


def _shrinkage(x: np.ndarray, gram: np.ndarray) -> tuple[float, float]:
    """(δ, m) of the Ledoit-Wolf estimate of demeaned `x` (T x n), sklearn's formula.

    sklearn sums the entries of (X∘X)ᵀ(X∘X), which is Σ_t (Σ_i x_ti²)², and the squared
    entries of XᵀX, which is ‖gram‖²_F for either Gram matrix.
    """
    t, n = x.shape
    row_power = np.einsum("ij,ij->i", x, x)
    m = float(row_power.sum() / (n * t))
    if n == 1:
        return 0.0, m
    beta_ = float(row_power @ row_power)
    delta_ = float(np.einsum("ij,ij->", gram, gram)) / t**2
    beta = (beta_ / t - delta_) / (n * t)
    delta = (delta_ - 2.0 * m * row_power.sum() / t + n * m**2) / n
    beta = min(beta, delta)
    return (0.0 if beta == 0 else beta / delta), m


def ledoit_wolf_covariance(returns: np.ndarray) -> np.ndarray:
    """The n x n Ledoit-Wolf covariance of a T x n return matrix (NaN allowed, see module)."""
    x = _demeaned(returns)
    if x.shape[0] < 2:
        raise ValueError(f"need at least 2 rows of returns, got {x.shape[0]}")
    delta, m = _shrinkage(x, _gram(x))
    s = x.T @ x / x.shape[0]
    return (1.0 - delta) * s + delta * m * np.eye(x.shape[1])


def risk_model(returns: np.ndarray, usable: np.ndarray, jitter: float = 1e-10,
               factors: int | None = None) -> RiskModel:
    """Ledoit-Wolf risk model of the `usable` columns of `returns` (T x N); see the module.

    Columns that are not usable get zero loadings and zero specific variance (their weight
    is fixed at 0 by the optimiser). `factors=K` gives the K-factor model where n > T
    (None: the exact model).
    """
    returns = np.asarray(returns, dtype=np.float64)
    usable = np.asarray(usable, dtype=bool)
    if factors is not None and factors < 1:
        raise ValueError(f"factors must be a positive number of factors, got {factors}")
    n_all = returns.shape[1]
    x = _demeaned(returns[:, usable])
    t, n = x.shape
    if t < 2 or n == 0:
        raise ValueError(f"need at least 2 rows and 1 usable column, got {t} x {n}")
    gram = _gram(x)
    delta, m = _shrinkage(x, gram)
    specific = np.full(n, delta * m + jitter)
    if n <= t:
        eigenvalues, vectors = np.linalg.eigh(gram / t)
        factor = vectors * np.sqrt((1.0 - delta) * np.maximum(eigenvalues, 0.0))
    elif factors is None or factors >= t:
        factor = np.sqrt((1.0 - delta) / t) * x.T
    else:
        _, top = scipy.linalg.eigh(gram, subset_by_index=[t - factors, t - 1])
        factor = np.sqrt((1.0 - delta) / t) * (x.T @ top)
        variance = (1.0 - delta) * np.einsum("ij,ij->j", x, x) / t
        specific += np.maximum(variance - np.einsum("ij,ij->i", factor, factor), 0.0)
    loadings = np.zeros((n_all, factor.shape[1]))
    loadings[usable] = factor
    d = np.zeros(n_all)
    d[usable] = specific
    return RiskModel(loadings, d)
