"""From predictions to target weights on each rebalance date, with nothing from the future.

For a decision date t:

    window_t   = the last `lookback` daily returns up to and including t (known at t's close)
    tradable_t = a finite prediction at t and at least `min_history` finite returns in window_t
    z_t        = the cross-sectional z-score of the tradable predictions at t
    μ_t,i      = ic · σ_t,i · z_t,i        (Grinold's rule: alpha = IC x volatility x score)
    w_t        = optimizer(h μ_t, h Σ_t, tradable_t, w_{t−1})

σ_t,i is the daily volatility of stock i over window_t and Σ_t the daily risk model of
window_t (`optimizers.covariance`, `risk_factors` factors where there are more names than
days). Mapping scores through z_t makes the optimiser see returns in return units whatever
scale a model predicts in (raw returns, z-scored labels, ranks), and `ic` states how much of
that score one believes. w_{t−1} is the previous target (the turnover penalty is measured
from it).

The holding horizon h. A book chosen at t is held for h days (the spacing of the decision
dates; `horizon=None` infers it), and its trading cost κ‖w − w_{t−1}‖₁ is paid once. With
μ and Σ the one-day mean and covariance and independent days, the h-day return of w has
mean h μᵀw and variance h wᵀΣw, so the mean-variance problem over the holding period is

    maximise_w  h μᵀw − γ h wᵀΣw − κ‖w − w_{t−1}‖₁
             =  h (μᵀw − γ wᵀΣw − (κ/h)‖w − w_{t−1}‖₁):

the one-off cost is amortised over the days the position is held. With h = 1 (the model
before this change) a one-day expected return (IC·σ·z ≈ 7.5e-4 per unit of z on the Dow 30)
was weighed against the whole cost, so at 20-30 bps no trade ever paid and the book froze.
`horizon=1` gives that model back. The signal is assumed to persist over the h days
(a decaying signal would be a lower `ic`).
"""
from __future__ import annotations

import logging
import warnings
from typing import Protocol

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from optimizers.covariance import RiskModel, risk_model
from optimizers.mean_variance import MeanVarianceOptimizer
from optimizers.topk import TopkDropout
from storm_bt.errors import StormBtError

log = logging.getLogger(__name__)


class Optimizer(Protocol):
    """What `rebalance_weights` needs of an optimiser."""

    name: str
    needs_risk_model: bool

    def weights(self, mu: np.ndarray, risk: RiskModel | None, tradable: np.ndarray,
                w_prev: np.ndarray) -> np.ndarray: ...


def expected_returns(scores: np.ndarray, volatility: np.ndarray, tradable: np.ndarray,
                     ic: float) -> np.ndarray:
    """μ_i = ic · σ_i · z_i over the tradable names (0 elsewhere and for a flat cross-section)."""
    mu = np.zeros(len(scores))
    s = scores[tradable]
    if s.size < 2 or not np.std(s) > 0:
        return mu
    mu[tradable] = ic * volatility[tradable] * (s - s.mean()) / s.std()
    return mu


def rebalance_weights(predictions: pd.DataFrame, returns: pd.DataFrame,
                      rebalance_dates: pd.DatetimeIndex, optimizer: Optimizer,
                      lookback: int = 252, min_history: int = 60,
                      ic: float = 0.05, horizon: float | None = None,
                      risk_factors: int | None = None) -> pd.DataFrame:
    """Target weights (rebalance date x ticker) from predictions; see the module docstring.

    Args:
        predictions: date x ticker scores (NaN = no prediction).
        returns: date x ticker daily simple returns (NaN = no price), same tickers.
        rebalance_dates: decision dates, all in `predictions.index`.
        horizon: h, the days a book is held, to which μ and Σ are scaled (None: the median
            spacing of `rebalance_dates` in `predictions.index`; 1: the one-day model).
        risk_factors: K, a K-factor risk model where a window has fewer days than names
            (None: the exact Ledoit-Wolf model).
    """
    missing = rebalance_dates.difference(predictions.index)
    if len(missing):
        raise StormBtError(f"rebalance date {missing[0].date()} has no predictions")
    if horizon is None:
        horizon = holding_horizon(predictions.index, rebalance_dates)
    if not horizon > 0:
        raise StormBtError(f"horizon {horizon}: must be a positive number of days")
    log.debug("%s: holding horizon %g days", optimizer.name, horizon)
    returns = returns.reindex(columns=predictions.columns)
    # One BLAS thread: the solves are small (K + 1 unknowns) and multi-threaded BLAS spins
    # for them; on a loaded 2-core machine it made a 500-name rebalance 50x slower.
    with threadpool_limits(limits=1, user_api="blas"):
        return _rebalance_loop(predictions, returns, rebalance_dates, optimizer, lookback,
                               min_history, ic, horizon, risk_factors)


def _rebalance_loop(predictions, returns, rebalance_dates, optimizer, lookback, min_history,
                    ic, horizon, risk_factors) -> pd.DataFrame:
    w_prev = np.zeros(len(predictions.columns))
    rows = []
    for date in tqdm(rebalance_dates, desc=f"{optimizer.name} weights", leave=False,
                     disable=not log.isEnabledFor(logging.INFO)):
        window = returns.loc[:date].iloc[-lookback:].to_numpy(dtype=np.float64)
        scores = predictions.loc[date].to_numpy(dtype=np.float64)
        history = np.isfinite(window).sum(axis=0)
        tradable = np.isfinite(scores) & (history >= min_history)
        if not tradable.any():
            log.warning("%s: no ticker has a prediction and %d days of history; cash",
                        date.date(), min_history)
            w = np.zeros(len(scores))
        else:
            with warnings.catch_warnings():   # a stock with < 2 days in the window has no
                warnings.simplefilter("ignore", RuntimeWarning)   # std: it is not tradable
                vol = np.nanstd(np.where(np.isfinite(window), window, np.nan), axis=0, ddof=1)
            vol = np.where(np.isfinite(vol), vol, 0.0)
            mu = horizon * expected_returns(np.nan_to_num(scores), vol, tradable, ic)
            risk = (risk_model(window, tradable, factors=risk_factors).scaled(horizon)
                    if optimizer.needs_risk_model else None)
            w = optimizer.weights(mu, risk, tradable, w_prev)
        rows.append(w)
        w_prev = w
    _log_solver_counts(optimizer)
    return pd.DataFrame(np.array(rows).reshape(len(rows), len(predictions.columns)),
                        index=rebalance_dates, columns=predictions.columns)


def _log_solver_counts(optimizer: Optimizer) -> None:
    """One line on the solves that were not clean: handed from Newton to cvxpy, met only the
    solver's reduced accuracy, or failed (the previous weights were kept)."""
    counts = {name: getattr(optimizer, name, 0) for name in ("fallbacks", "inaccurate", "failures")}
    if any(counts.values()):
        log.info("%s: %d solves; %d handed to cvxpy, %d at the solver's reduced accuracy, "
                 "%d failed (previous weights kept)", optimizer.name,
                 getattr(optimizer, "solves", 0), *counts.values())


def holding_horizon(dates: pd.DatetimeIndex, rebalance_dates: pd.DatetimeIndex) -> float:
    """The median number of `dates` between consecutive rebalance dates (1 for one date)."""
    if len(rebalance_dates) < 2:
        return 1.0
    positions = dates.get_indexer(rebalance_dates)
    return float(max(np.median(np.diff(positions)), 1))


#: ``solver="auto"`` uses the dual Newton solver for universes larger than this.
NEWTON_FROM_ASSETS = 100


def make_optimizer(name: str, n_assets: int, risk_aversion: float = 5.0, max_weight: float = 0.1,
                   turnover_penalty: float = 1e-3, long_short: bool = False,
                   gross_limit: float = 2.0, k: int = 5, n_drop: int = 3,
                   solver: str = "auto") -> Optimizer:
    """The optimiser called `name` ('mean-variance' or 'topk') with its settings.

    ``solver="auto"`` takes the dual Newton method above `NEWTON_FROM_ASSETS` names, where
    it is many times faster than cvxpy, and cvxpy (CLARABEL) below, where cvxpy is faster.
    """
    if solver == "auto":
        solver = "newton" if n_assets > NEWTON_FROM_ASSETS else "cvxpy"
    if name == "mean-variance":
        return MeanVarianceOptimizer(n_assets, risk_aversion=risk_aversion, max_weight=max_weight,
                                     turnover_penalty=turnover_penalty, long_short=long_short,
                                     gross_limit=gross_limit, solver=solver)
    if name == "topk":
        return TopkDropout(k=k, n_drop=n_drop)
    raise StormBtError(f"unknown optimizer {name!r}; choose mean-variance or topk")
