"""The mean-variance problem in factor form, solved exactly by Newton's method on its dual.

The primal (N weights; Σ = B Bᵀ + diag(d) with B of K columns and d > 0 where l < u):

    minimise_w   f(w) = γ‖Bᵀw‖² + γ Σ_i d_i w_i² − μᵀw + κ‖w − w₀‖₁
    subject to   l ≤ w ≤ u,   1ᵀw = b,   and optionally ‖w‖₁ ≤ G.

Dualising y = Bᵀw (multiplier λ ∈ R^K), 1ᵀw = b (ν) and ‖w‖₁ ≤ G (η ≥ 0) splits the rest
into N one-dimensional problems:

    q(λ, ν, η) = −‖λ‖²/(4γ) − νb − ηG + Σ_i min_{l_i ≤ w ≤ u_i} φ_i(w),
    φ_i(w)     = γ d_i w² + c_i w + κ|w − w₀_i| + η|w|,        c = Bλ + ν1 − μ.

Each minimiser w_i(c_i) is closed form: the stationary point of the linear piece of φ_i'
that crosses zero (or the kink w₀_i / 0 where it jumps over zero), clipped to [l_i, u_i].
q is concave and piecewise quadratic with gradient (the primal residuals)

    ∂q/∂λ = Bᵀw − λ/(2γ),    ∂q/∂ν = 1ᵀw − b,    ∂q/∂η = ‖w‖₁ − G,

and generalised Hessian −H, H = diag(I_K/(2γ), 0, 0) + Σ_{i∈F} J_iᵀJ_i / (2γ d_i), where
F holds the names strictly inside a linear piece and J_i = (B_i, 1, sign w_i). Newton
steps θ ← θ + t H⁻¹∇q (backtracking on t) identify the active set in a few steps and then
land on the maximiser; each step costs O(NK + |F|K² + K³). At the maximiser w(θ) is the
unique primal solution (f is strictly convex): the solve is accepted when the residuals
are below `tol` (in weight units, scaled by the factor size for ∂q/∂λ) and the duality
gap f(w) − q(θ) is below `tol` · (1 + |f(w)|); otherwise the caller gets `None` and
falls back to a general solver. The gross limit is handled by solving first with η = 0
and, only if ‖w‖₁ > G, again with η free (kept ≥ 0).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg


@dataclass(frozen=True)
class FactorQP:
    """One instance of the module's problem (arrays of length N, loadings N x K)."""

    mu: np.ndarray
    loadings: np.ndarray
    specific: np.ndarray
    risk_aversion: float
    turnover_penalty: float
    w_prev: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    budget: float
    gross_limit: float | None = None

    def objective(self, w: np.ndarray) -> float:
        """f(w), the primal objective (to minimise)."""
        exposure = self.loadings.T @ w
        return float(self.risk_aversion * (exposure @ exposure + self.specific @ (w * w))
                     - self.mu @ w + self.turnover_penalty * np.abs(w - self.w_prev).sum())


@dataclass(frozen=True)
class FactorQPSolution:
    weights: np.ndarray
    iterations: int
    gap: float


class _Dual:
    """q(θ), w(θ) and Newton's system for one FactorQP; θ = (λ, ν[, η])."""

    def __init__(self, p: FactorQP) -> None:
        self.p = p
        self.fixed = p.upper <= p.lower
        self.curvature = np.where(self.fixed, 1.0, 2.0 * p.risk_aversion * p.specific)  # 2γd

    def primal(self, theta: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(w(θ), free mask) by the closed-form one-dimensional minimisers."""
        eta = theta[k + 1] if len(theta) > k + 1 else 0.0
        return self.minimisers(self.p.loadings @ theta[:k] + theta[k] - self.p.mu, eta)

    def minimisers(self, c: np.ndarray, eta: float) -> tuple[np.ndarray, np.ndarray]:
        """argmin φ_i over [l_i, u_i] for each name, and whether it lies inside a linear piece."""
        p = self.p
        a, kappa, w0 = self.curvature, p.turnover_penalty, p.w_prev
        # Kinks at w₀ (weight κ) and 0 (weight η), in increasing order per name.
        lo, hi = np.minimum(w0, 0.0), np.maximum(w0, 0.0)
        a_lo = np.where(w0 <= 0.0, kappa, eta)
        a_hi = kappa + eta - a_lo
        w_left = -(c - kappa - eta) / a
        w_mid = -(c + a_lo - a_hi) / a
        w_right = -(c + kappa + eta) / a
        at_lo = (w_left >= lo) & (w_mid < lo)
        at_hi = (w_mid > hi) & (w_right < hi)
        unclipped = np.where(w_left < lo, w_left, np.where(at_lo, lo, np.where(
            w_mid <= hi, w_mid, np.where(at_hi, hi, w_right))))
        w = np.clip(unclipped, p.lower, p.upper)
        # A name on the edge of a kink or bound (where the exact line search stops) counts
        # as free, so that Newton's next step sees its curvature.
        edge = 1e-10
        near_kink = ((np.abs(w_left - lo) <= edge) | (np.abs(w_mid - lo) <= edge)
                     | (np.abs(w_mid - hi) <= edge) | (np.abs(w_right - hi) <= edge))
        inside = (unclipped > p.lower - edge) & (unclipped < p.upper + edge)
        free = ((~(at_lo | at_hi) | near_kink) & inside) & (p.upper > p.lower)
        return w, free

    def best_nu(self, theta: np.ndarray, k: int) -> np.ndarray:
        """θ with ν replaced by argmax_ν q: the root of the non-increasing 1ᵀw(ν) − b.

        1ᵀw is continuous and piecewise linear in ν, every w_i sits at u_i for ν below
        −2γd_i u_i − c0_i − κ − η and at l_i above −2γd_i l_i − c0_i + κ + η (c = c0 + ν),
        which brackets the root; regula falsi (Illinois) then finds it.
        """
        p = self.p
        eta = theta[k + 1] if len(theta) > k + 1 else 0.0
        c0 = p.loadings @ theta[:k] - p.mu
        spread = p.turnover_penalty + eta + 1.0
        lo = float(np.min(-self.curvature * p.upper - c0)) - spread
        hi = float(np.max(-self.curvature * p.lower - c0)) + spread

        def excess(nu: float) -> float:
            return float(self.minimisers(c0 + nu, eta)[0].sum() - p.budget)

        f_lo, f_hi = excess(lo), excess(hi)
        out = theta.copy()
        if f_lo < 0 or f_hi > 0:
            return out  # infeasible budget: leave ν to Newton (and the caller's checks)
        side = 0
        for _ in range(200):
            nu = hi - f_hi * (hi - lo) / (f_hi - f_lo) if f_hi != f_lo else 0.5 * (lo + hi)
            f = excess(nu)
            if abs(f) <= 1e-15 or hi - lo <= 1e-15 * max(1.0, abs(nu)):
                break
            if f > 0:
                lo, f_lo = nu, f
                if side == 1:
                    f_hi *= 0.5
                side = 1
            else:
                hi, f_hi = nu, f
                if side == -1:
                    f_lo *= 0.5
                side = -1
        out[k] = nu
        return out

    def value(self, theta: np.ndarray, k: int, w: np.ndarray) -> float:
        """q(θ), given w = w(θ)."""
        p = self.p
        lam, nu = theta[:k], theta[k]
        eta = theta[k + 1] if len(theta) > k + 1 else 0.0
        c = p.loadings @ lam + nu - p.mu
        inner = (p.risk_aversion * p.specific * w * w + c * w
                 + p.turnover_penalty * np.abs(w - p.w_prev) + eta * np.abs(w))
        gross = p.gross_limit if p.gross_limit is not None else 0.0
        return float(-lam @ lam / (4.0 * p.risk_aversion) - nu * p.budget - eta * gross
                     + inner.sum())

    def gradient(self, theta: np.ndarray, k: int, w: np.ndarray) -> np.ndarray:
        p = self.p
        g = [p.loadings.T @ w - theta[:k] / (2.0 * p.risk_aversion), [w.sum() - p.budget]]
        if len(theta) > k + 1:
            g.append([np.abs(w).sum() - p.gross_limit])
        return np.concatenate(g)

    def newton_matrix(self, k: int, w: np.ndarray, free: np.ndarray, with_eta: bool) -> np.ndarray:
        p = self.p
        cols = [p.loadings[free], np.ones((free.sum(), 1))]
        if with_eta:
            cols.append(np.sign(w[free])[:, None])
        j = np.hstack(cols)
        h = (j.T / self.curvature[free]) @ j
        h[np.arange(k), np.arange(k)] += 1.0 / (2.0 * p.risk_aversion)
        return h


def solve_factor_qp(problem: FactorQP, tol: float = 1e-9, max_iter: int = 50,
                    ) -> FactorQPSolution | None:
    """The exact minimiser of `problem` (see the module), or None where Newton does not certify one."""
    p = problem
    if np.any(p.lower > p.upper) or np.any((p.upper > p.lower) & ~(p.specific > 0)):
        return None  # empty box, or a tradable name without specific variance
    dual = _Dual(p)
    k = p.loadings.shape[1]
    lam = 2.0 * p.risk_aversion * (p.loadings.T @ np.clip(p.w_prev, p.lower, p.upper))
    # ν such that the unconstrained minimisers (1ᵀw ≈ Σ(μ − Bλ − ν)/(2γd)) meet the budget.
    inv = np.where(dual.fixed, 0.0, 1.0 / dual.curvature)
    nu = float(((p.mu - p.loadings @ lam) @ inv - p.budget) / max(inv.sum(), 1e-300))
    theta = np.concatenate([lam, [nu]])
    solution, iterations = _newton(dual, theta, k, tol, max_iter, with_eta=False)
    if solution is None:
        return None
    w, theta = solution
    if p.gross_limit is not None and np.abs(w).sum() > p.gross_limit + tol:
        more, extra = _newton(dual, np.concatenate([theta, [0.0]]), k, tol, max_iter, with_eta=True)
        iterations += extra
        if more is None:
            return None
        w, theta = more
    gap = p.objective(w) - dual.value(theta, k, w)
    if not gap <= tol * (1.0 + abs(p.objective(w))):
        return None
    return FactorQPSolution(w, iterations, gap)


def _newton(dual: _Dual, theta: np.ndarray, k: int, tol: float, max_iter: int, with_eta: bool,
            ) -> tuple[tuple[np.ndarray, np.ndarray] | None, int]:
    """Newton ascent on q from θ with an exact line search; ((w, θ) or None, iterations)."""
    p = dual.p
    scale = np.ones(len(theta))
    scale[:k] = max(float(np.abs(p.loadings).max(initial=0.0)), 1e-300)
    for it in range(1, max_iter + 1):
        theta = dual.best_nu(theta, k)  # exact in ν: Newton's matrix can be singular along it
        w, free = dual.primal(theta, k)
        g = dual.gradient(theta, k, w)
        if np.all(np.abs(g) <= tol * scale):
            return (w, theta), it - 1
        if not free.any():  # all at kinks or bounds: let Newton see the names inside the box
            free = (w > p.lower) & (w < p.upper)
        h = dual.newton_matrix(k, w, free, with_eta)
        # H is singular along ν (and η) when no name is free; the line search then sets the step.
        h[np.diag_indices_from(h)] += 1e-12 * float(np.abs(h).max())
        try:
            step = scipy.linalg.solve(h, g, assume_a="pos")
        except (np.linalg.LinAlgError, ValueError):
            return None, it
        t_max = 1.0
        if with_eta and step[-1] < 0:
            t_max = min(1.0, theta[-1] / -step[-1])
        t = _line_search(dual, theta, step, k, t_max, float(g @ step))
        if not t > 0:
            return None, it
        theta = theta + t * step
        if with_eta:
            theta[-1] = max(theta[-1], 0.0)
    return None, max_iter


def _line_search(dual: _Dual, theta: np.ndarray, step: np.ndarray, k: int, t_max: float,
                 slope0: float) -> float:
    """The maximiser of the concave q(θ + t·step) over [0, t_max].

    Its derivative φ'(t) = ∇q(θ + t·step)·step is non-increasing and piecewise linear, so
    regula falsi (Illinois) finds its root in a few evaluations.
    """
    def slope(t: float) -> float:
        trial = theta + t * step
        w, _ = dual.primal(trial, k)
        return float(dual.gradient(trial, k, w) @ step)

    if slope0 <= 0:
        return 0.0
    lo, s_lo = 0.0, slope0
    hi, s_hi = t_max, slope(t_max)
    if s_hi >= -1e-12 * slope0:
        return hi
    side = 0
    for _ in range(60):
        t = hi - s_hi * (hi - lo) / (s_hi - s_lo) if s_hi != s_lo else 0.5 * (lo + hi)
        s_t = slope(t)
        if abs(s_t) <= 1e-12 * slope0 or hi - lo <= 1e-15 * t_max:
            return t
        if s_t > 0:
            lo, s_lo = t, s_t
            if side == 1:
                s_hi *= 0.5
            side = 1
        else:
            hi, s_hi = t, s_t
            if side == -1:
                s_lo *= 0.5
            side = -1
    return lo if lo > 0 else t
