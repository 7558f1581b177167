"""Risk models from trailing daily returns: Ledoit-Wolf shrinkage, in full or factor form.

With X the T x n matrix of demeaned daily returns of the n usable assets (a missing return
is set to its column mean, i.e. 0 after demeaning), the sample covariance is S = XᵀX / T and
the Ledoit-Wolf estimate (sklearn's shrinkage intensity δ) is

    Σ = (1 - δ) S + δ m I,        m = trace(S) / n.

Because S = XᵀX / T, the same Σ has an exact factor form with T statistical factors,

    Σ = B Bᵀ + diag(d),           B = sqrt((1 - δ) / T) Xᵀ   (n x T),   d = δ m,

so a problem over hundreds of assets never forms the n x n matrix. `risk_model` returns
whichever form is smaller: the Cholesky factor (Σ = L Lᵀ) when n <= T, else the factor form.
Either way the optimiser sees Σ = B Bᵀ + diag(d) with B of at most min(n, T) columns.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.covariance import ledoit_wolf_shrinkage


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


def _demeaned(returns: np.ndarray) -> np.ndarray:
    """Columns minus their NaN-mean, NaN set to 0 (a missing day adds no co-movement)."""
    x = np.asarray(returns, dtype=np.float64)
    mean = np.nanmean(np.where(np.isfinite(x), x, np.nan), axis=0) if len(x) else 0.0
    centred = x - mean
    return np.where(np.isfinite(centred), centred, 0.0)


def _shrinkage(x: np.ndarray) -> tuple[float, float]:
    """(δ, m) of the Ledoit-Wolf estimate of demeaned `x` (T x n)."""
    delta = float(ledoit_wolf_shrinkage(x, assume_centered=True))
    m = float(np.einsum("ij,ij->", x, x) / (x.shape[0] * x.shape[1]))
    return delta, m


def ledoit_wolf_covariance(returns: np.ndarray) -> np.ndarray:
    """The n x n Ledoit-Wolf covariance of a T x n return matrix (NaN allowed, see module)."""
    x = _demeaned(returns)
    if x.shape[0] < 2:
        raise ValueError(f"need at least 2 rows of returns, got {x.shape[0]}")
    delta, m = _shrinkage(x)
    s = x.T @ x / x.shape[0]
    return (1.0 - delta) * s + delta * m * np.eye(x.shape[1])


def risk_model(returns: np.ndarray, usable: np.ndarray, jitter: float = 1e-10) -> RiskModel:
    """Ledoit-Wolf risk model of the `usable` columns of `returns` (T x N), in the smaller form.

    Columns that are not usable get zero loadings and zero specific variance (their weight
    is fixed at 0 by the optimiser). `jitter` is added to the diagonal before a Cholesky
    factorisation so that a singular Σ still factors.
    """
    returns = np.asarray(returns, dtype=np.float64)
    usable = np.asarray(usable, dtype=bool)
    n_all = returns.shape[1]
    x = _demeaned(returns[:, usable])
    t, n = x.shape
    if t < 2 or n == 0:
        raise ValueError(f"need at least 2 rows and 1 usable column, got {t} x {n}")
    delta, m = _shrinkage(x)
    if n <= t:
        sigma = (1.0 - delta) * (x.T @ x / t) + (delta * m + jitter) * np.eye(n)
        factor, specific = np.linalg.cholesky(sigma), np.zeros(n)
    else:
        factor = np.sqrt((1.0 - delta) / t) * x.T
        specific = np.full(n, delta * m)
    loadings = np.zeros((n_all, factor.shape[1]))
    loadings[usable] = factor
    d = np.zeros(n_all)
    d[usable] = specific
    return RiskModel(loadings, d)
