"""Mean-variance weights with a turnover penalty, as one cvxpy problem solved many times.

At each rebalance, with expected returns μ, risk model Σ = B Bᵀ + diag(d) (see
`optimizers.covariance`) and the previous target weights w_prev:

    maximise_w   μᵀw − γ (‖Bᵀw‖² + ‖√d ∘ w‖²) − κ ‖w − w_prev‖₁
    long-only:   Σ w = 1,   0 ≤ w ≤ u
    long-short:  Σ w = 0,   −u ≤ w ≤ u,   ‖w‖₁ ≤ G          (dollar neutral)

u is w_max for a name that can be traded on the day and 0 for one that cannot. If fewer
than 1/w_max names can be traded, a long-only book could not be fully invested, so u is
raised to 1/n_tradable for that day (logged).

Solvers (`solver=`):
- "newton" (default): the exact dual Newton method of `optimizers.factor_qp`, a few
  milliseconds at 500 assets with a K-factor risk model. It needs d > 0 on the tradable
  names (every model of `optimizers.covariance` has it) and certifies its answer (residuals
  and duality gap); when it cannot, the cvxpy path below solves the day instead (counted in
  `fallbacks`).
- "cvxpy": the reference. The problem is built once with `cp.Parameter`s for μ, B, √d,
  w_prev and the bounds (it is DPP, so cvxpy compiles it once) and re-solved with new
  values: CLARABEL first (tolerances tightened to the scale of the objective), OSQP as the
  fallback. An answer that meets only the solver's reduced-accuracy tolerances (cvxpy's
  "optimal_inaccurate") is kept and counted in `inaccurate` instead of warned about day
  by day; the rebalance loop logs the counts once.
If every solver fails, the previous weights are kept (tradable names only) and a warning
is logged.
"""
from __future__ import annotations

import logging
import warnings

import cvxpy as cp
import numpy as np

from optimizers.covariance import RiskModel
from optimizers.factor_qp import FactorQP, solve_factor_qp

log = logging.getLogger(__name__)

SOLVERS = ("CLARABEL", "OSQP")
# μᵀw is ~1e-4: CLARABEL's default absolute gap (1e-8) leaves weights ~1e-4 from the optimum.
SOLVER_SETTINGS = {"CLARABEL": {"tol_gap_abs": 1e-12, "tol_gap_rel": 1e-10, "tol_feas": 1e-10},
                   "OSQP": {}}
METHODS = ("newton", "cvxpy")


class MeanVarianceOptimizer:
    """Markowitz weights with L1 turnover penalty; see the module docstring for the maths.

    Args:
        n_assets: N, the universe size (fixed for the optimiser's life).
        risk_aversion: γ.
        max_weight: w_max, the bound on |w_i|.
        turnover_penalty: κ, the price of one unit of Σ|Δw| (e.g. the cost rate).
        long_short: dollar-neutral long-short book instead of fully invested long-only.
        gross_limit: G, the bound on Σ|w| in long-short mode.
        solver: "newton" (exact dual Newton, cvxpy as its fallback) or "cvxpy" (the reference).
    """

    name = "mean-variance"
    needs_risk_model = True

    def __init__(self, n_assets: int, risk_aversion: float = 5.0, max_weight: float = 0.1,
                 turnover_penalty: float = 1e-3, long_short: bool = False,
                 gross_limit: float = 2.0, solver: str = "newton") -> None:
        if n_assets < 1:
            raise ValueError(f"n_assets must be positive, got {n_assets}")
        if risk_aversion < 0 or turnover_penalty < 0:
            raise ValueError("risk_aversion and turnover_penalty must be >= 0")
        if solver not in METHODS:
            raise ValueError(f"solver must be one of {METHODS}, got {solver!r}")
        self.n_assets = n_assets
        self.risk_aversion = float(risk_aversion)
        self.max_weight = float(max_weight)
        self.turnover_penalty = float(turnover_penalty)
        self.long_short = bool(long_short)
        self.gross_limit = float(gross_limit)
        self.solver = solver
        self.problem: cp.Problem | None = None
        self.width = 0
        self.solves = 0
        self.fallbacks = 0
        self.failures = 0
        self.inaccurate = 0

    # ------------------------------------------------------------------ problem
    def _build(self, width: int) -> None:
        n = self.n_assets
        self.w = cp.Variable(n, name="w")
        self.mu = cp.Parameter(n, name="mu")
        self.loadings = cp.Parameter((n, width), name="B")
        self.sqrt_specific = cp.Parameter(n, nonneg=True, name="sqrt_d")
        self.w_prev = cp.Parameter(n, name="w_prev")
        self.upper = cp.Parameter(n, nonneg=True, name="upper")
        risk = cp.sum_squares(self.loadings.T @ self.w) + \
            cp.sum_squares(cp.multiply(self.sqrt_specific, self.w))
        objective = self.mu @ self.w - self.risk_aversion * risk \
            - self.turnover_penalty * cp.norm1(self.w - self.w_prev)
        if self.long_short:
            constraints = [cp.sum(self.w) == 0, self.w <= self.upper, self.w >= -self.upper,
                           cp.norm1(self.w) <= self.gross_limit]
        else:
            constraints = [cp.sum(self.w) == 1, self.w >= 0, self.w <= self.upper]
        self.problem = cp.Problem(cp.Maximize(objective), constraints)
        self.width = width
        log.debug("built the mean-variance problem: %d assets, %d risk columns", n, width)

    def _upper(self, tradable: np.ndarray) -> np.ndarray:
        n_tradable = int(tradable.sum())
        cap = self.max_weight
        if not self.long_short and n_tradable * cap < 1.0:
            cap = 1.0 / n_tradable
            log.info("only %d tradable names: weight cap raised from %.3g to %.3g for the day",
                     n_tradable, self.max_weight, cap)
        return np.where(tradable, cap, 0.0)

    # ------------------------------------------------------------------ solve
    def weights(self, mu: np.ndarray, risk: RiskModel, tradable: np.ndarray,
                w_prev: np.ndarray) -> np.ndarray:
        """Target weights (N,) for expected returns `mu` (NaN where not tradable)."""
        tradable = np.asarray(tradable, dtype=bool) & np.isfinite(mu)
        w_prev = np.nan_to_num(np.asarray(w_prev, dtype=np.float64))
        if not tradable.any():
            log.warning("no tradable name: the book goes to cash")
            return np.zeros(self.n_assets)
        self.solves += 1
        mu = np.where(tradable, np.nan_to_num(mu), 0.0)
        upper = self._upper(tradable)
        if self.solver == "newton" and self.risk_aversion > 0:
            solution = solve_factor_qp(FactorQP(
                mu, risk.loadings, np.where(tradable, risk.specific, 0.0), self.risk_aversion,
                self.turnover_penalty, w_prev, -upper if self.long_short else np.zeros_like(upper),
                upper, 0.0 if self.long_short else 1.0,
                self.gross_limit if self.long_short else None))
            if solution is not None:
                return self._clean(solution.weights, tradable)
            self.fallbacks += 1
            log.debug("dual Newton did not certify a solution; solving with cvxpy")
        return self._solve_cvxpy(mu, risk, tradable, w_prev, upper)

    def _solve_cvxpy(self, mu: np.ndarray, risk: RiskModel, tradable: np.ndarray,
                     w_prev: np.ndarray, upper: np.ndarray) -> np.ndarray:
        width = risk.loadings.shape[1]
        if self.problem is None or width > self.width:
            self._build(max(width, self.width))
        loadings = np.zeros((self.n_assets, self.width))
        loadings[:, :width] = risk.loadings
        self.mu.value = mu
        self.loadings.value = loadings
        self.sqrt_specific.value = np.sqrt(np.maximum(risk.specific, 0.0))
        self.w_prev.value = w_prev
        self.upper.value = upper
        for solver in SOLVERS:
            try:
                with warnings.catch_warnings():   # counted below, reported once per run
                    warnings.filterwarnings("ignore", message="Solution may be inaccurate")
                    self.problem.solve(solver=solver, **SOLVER_SETTINGS[solver])
            except cp.error.SolverError as exc:
                log.debug("%s failed: %s", solver, exc)
                continue
            if self.problem.status in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE) and self.w.value is not None:
                if self.problem.status == cp.OPTIMAL_INACCURATE:
                    self.inaccurate += 1
                    log.debug("%s: reduced accuracy only (%s)", solver, self.problem.status)
                return self._clean(self.w.value, tradable)
            log.debug("%s ended with status %s", solver, self.problem.status)
        self.failures += 1
        log.warning("mean-variance: no solver succeeded (status %s); keeping the previous weights",
                    self.problem.status)
        return np.where(tradable, w_prev, 0.0)

    def _clean(self, w: np.ndarray, tradable: np.ndarray) -> np.ndarray:
        """Zero out solver dust (|w| < 1e-7) and untradable names; long-only stays >= 0."""
        w = np.where(tradable & (np.abs(w) >= 1e-7), w, 0.0)
        if not self.long_short:
            w = np.maximum(w, 0.0)
            total = w.sum()
            if total > 0:
                w = w / total
        return w
