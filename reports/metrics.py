"""Performance metrics of a daily simple-return series, as pure functions.

Notation: r_1..r_N are daily simple returns (a pandas Series indexed by date), the wealth
is W_0 = 1, W_t = prod_{s<=t} (1 + r_s), and A = 252 trading days a year.

Standard (quantstats-style, annualised) definitions, used everywhere by default:

    annual_return      (W_N)^(A/N) - 1                       compounded
    cumulative_wealth  W_N = V_N / V_0
    annual_volatility  std(r, ddof=1) * sqrt(A)
    sharpe             mean(r) / std(r, ddof=1) * sqrt(A)    risk-free rate 0
    sortino            mean(r) / sqrt(mean(min(r, 0)^2)) * sqrt(A)
    max_drawdown       max_t (1 - W_t / max_{s<=t} W_s), s from 0: the peak includes W_0 = 1
    calmar             annual_return / max_drawdown
    turnover           mean over rebalances of tau_t = 1/2 sum_i |w_{t,i} - w_{t-1,i}|

`trading_metrics` gives the same numbers under the paper's names (APY, CW, CR, ASR, MDD,
AVO) from a value series V_0..V_N. `storm_coded_metrics` reproduces the official STORM
code's conventions (STORM_SPEC section 5, D10, D11) for parity tables only.

Missing values: NaN returns are dropped (a day without a return). Undefined values are NaN:
an empty series gives NaN for every rate and ratio (cumulative_wealth is 1.0 and
max_drawdown 0.0, both defined on W_0 alone); ratios whose denominator is zero (a constant
series, no losing day, no drawdown) are NaN; fewer than two returns give NaN for
volatility and Sharpe.
"""
from __future__ import annotations

import math
from typing import Literal

import numpy as np
import pandas as pd

#: Trading days a year.
PERIODS_PER_YEAR = 252

NAN = float("nan")


def _clean(returns: pd.Series | np.ndarray) -> np.ndarray:
    """The returns as a float64 array with NaN removed."""
    r = np.asarray(returns, dtype=np.float64).ravel()
    return r[~np.isnan(r)]


def _ratio(num: float, den: float) -> float:
    """num / den, NaN where den is 0 or either is NaN."""
    if not (math.isfinite(num) and math.isfinite(den)) or den == 0.0:
        return NAN
    return float(num / den)


def _is_constant(r: np.ndarray) -> bool:
    # Exact test: the mean of equal floats need not equal them, so std may be ~1e-19.
    return r.size > 0 and bool(np.ptp(r) == 0.0)


def _wealth(r: np.ndarray) -> np.ndarray:
    """W_0 = 1, W_1, ..., W_N."""
    return np.concatenate(([1.0], np.cumprod(1.0 + r)))


def cumulative_wealth(returns: pd.Series) -> float:
    """CW = V_N / V_0 = prod_t (1 + r_t); 1.0 for an empty series."""
    return float(np.prod(1.0 + _clean(returns)))


def annual_return(returns: pd.Series, periods_per_year: int = PERIODS_PER_YEAR) -> float:
    """Compounded annual return (prod_t (1 + r_t))^(252/N) - 1.

    NaN for an empty series or a non-positive final wealth (no real root); -1.0 when the
    wealth reaches exactly 0.
    """
    r = _clean(returns)
    if r.size == 0:
        return NAN
    w = float(np.prod(1.0 + r))
    if w < 0.0:
        return NAN
    return w ** (periods_per_year / r.size) - 1.0


def annual_volatility(returns: pd.Series, periods_per_year: int = PERIODS_PER_YEAR) -> float:
    """std(r, ddof=1) * sqrt(252); 0.0 for a constant series, NaN for fewer than 2 returns."""
    r = _clean(returns)
    if r.size < 2:
        return NAN
    if _is_constant(r):
        return 0.0
    return float(np.std(r, ddof=1) * math.sqrt(periods_per_year))


def sharpe(returns: pd.Series, periods_per_year: int = PERIODS_PER_YEAR) -> float:
    """Annualised Sharpe ratio mean(r) / std(r, ddof=1) * sqrt(252), risk-free rate 0.

    NaN for fewer than 2 returns or a constant series (zero volatility).
    """
    r = _clean(returns)
    if r.size < 2 or _is_constant(r):
        return NAN
    return _ratio(float(np.mean(r)), float(np.std(r, ddof=1))) * math.sqrt(periods_per_year)


def downside_deviation(returns: pd.Series) -> float:
    """Daily downside deviation sqrt(mean(min(r, 0)^2)) over all N days; NaN when empty."""
    r = _clean(returns)
    if r.size == 0:
        return NAN
    return float(np.sqrt(np.mean(np.minimum(r, 0.0) ** 2)))


def sortino(returns: pd.Series, periods_per_year: int = PERIODS_PER_YEAR) -> float:
    """Annualised Sortino ratio mean(r) / sqrt(mean(min(r, 0)^2)) * sqrt(252).

    The mean of squares is over all N days (target 0), as in quantstats. NaN when empty or
    when no day lost money (zero downside deviation).
    """
    r = _clean(returns)
    return _ratio(float(np.mean(r)) if r.size else NAN, downside_deviation(r)) * math.sqrt(
        periods_per_year)


def drawdown_series(returns: pd.Series) -> pd.Series:
    """Drawdown 1 - W_t / max_{s<=t} W_s at each date (>= 0), the peak including W_0 = 1."""
    r = pd.Series(returns, dtype=np.float64).dropna()
    w = _wealth(r.to_numpy())
    dd = 1.0 - w / np.maximum.accumulate(w)
    return pd.Series(dd[1:], index=r.index, name="drawdown")


def max_drawdown(returns: pd.Series) -> float:
    """Maximum drawdown max_t (1 - W_t / max_{s<=t} W_s) as a positive number.

    The running peak starts at the initial value W_0 = 1, so a loss on the first day counts
    (the STORM code's MDD does not; see `storm_coded_metrics`). 0.0 for an empty series.
    """
    w = _wealth(_clean(returns))
    return float(np.max(1.0 - w / np.maximum.accumulate(w)))


def calmar(returns: pd.Series, periods_per_year: int = PERIODS_PER_YEAR) -> float:
    """Calmar ratio annual_return / max_drawdown; NaN when there is no drawdown."""
    return _ratio(annual_return(returns, periods_per_year), max_drawdown(returns))


def one_way_turnover(weights: pd.DataFrame) -> pd.Series:
    """Per-rebalance one-way turnover tau_t = 1/2 sum_i |w_{t,i} - w_{t-1,i}|.

    `weights` is date x ticker with one row per rebalance (NaN = not held = 0). The first
    row is measured against an all-cash book (w_{-1} = 0), so building a fully invested
    book counts 0.5. Weights are taken as given: pass post-trade targets against drifted
    pre-trade weights by computing tau yourself and calling `turnover` on the Series.
    """
    w = weights.astype(np.float64).fillna(0.0)
    delta = w.diff()
    if len(w):
        delta.iloc[0] = w.iloc[0]
    return (0.5 * delta.abs().sum(axis=1)).rename("turnover")


def _tau(weights_or_turnover: pd.DataFrame | pd.Series) -> np.ndarray:
    """tau_t from weights (DataFrame) or as given (Series), NaN removed."""
    if isinstance(weights_or_turnover, pd.DataFrame):
        return _clean(one_way_turnover(weights_or_turnover))
    return _clean(weights_or_turnover)


def turnover(
    weights_or_turnover: pd.DataFrame | pd.Series,
    annualise: bool = False,
    periods_per_year: int = PERIODS_PER_YEAR,
) -> float:
    """Mean one-way turnover per rebalance, mean_t tau_t.

    Args:
        weights_or_turnover: a date x ticker DataFrame of weights (tau_t computed by
            `one_way_turnover`) or a Series of tau_t, one row per rebalance.
        annualise: return mean_t tau_t * periods_per_year, the turnover per year when
            `periods_per_year` rebalances happen a year (252 for a daily rebalance).
    Returns:
        NaN for no rebalance.
    """
    tau = _tau(weights_or_turnover)
    if tau.size == 0:
        return NAN
    mean = float(np.mean(tau))
    return mean * periods_per_year if annualise else mean


def performance_metrics(
    returns: pd.Series,
    turnover: pd.DataFrame | pd.Series | None = None,
    periods_per_year: int = PERIODS_PER_YEAR,
) -> dict[str, float]:
    """All standard metrics of a daily return series, by name.

    Keys: annual_return, cumulative_wealth, annual_volatility, sharpe, sortino,
    max_drawdown, calmar, n_days; with `turnover` (weights or tau_t, see `turnover`) also
    turnover (mean per rebalance) and annual_turnover = sum_t tau_t * 252 / N, the total
    traded over the years the returns span (right for any rebalance frequency).
    """
    r = _clean(returns)
    out = {
        "annual_return": annual_return(r, periods_per_year),
        "cumulative_wealth": cumulative_wealth(r),
        "annual_volatility": annual_volatility(r, periods_per_year),
        "sharpe": sharpe(r, periods_per_year),
        "sortino": sortino(r, periods_per_year),
        "max_drawdown": max_drawdown(r),
        "calmar": calmar(r, periods_per_year),
        "n_days": float(r.size),
    }
    if turnover is not None:
        tau = _tau(turnover)
        out["turnover"] = float(np.mean(tau)) if tau.size else NAN
        out["annual_turnover"] = (float(np.sum(tau)) * periods_per_year / r.size
                                  if r.size else NAN)
    return out


def trading_metrics(values: pd.Series, periods_per_year: int = PERIODS_PER_YEAR) -> dict[str, float]:
    """The paper's trading metrics from a portfolio value series V_0, V_1, ..., V_N.

    With r_t = V_t / V_{t-1} - 1 (N returns):

        APY = (V_N / V_0)^(252/N) - 1
        CW  = V_N / V_0
        MDD = max_t (1 - V_t / max_{s<=t} V_s), the peak starting at V_0
        CR  = APY / MDD
        ASR = mean(r) / std(r, ddof=1) * sqrt(252)
        AVO = std(r, ddof=1) * sqrt(252)

    A series with fewer than 2 values, or a non-positive or NaN V_0, gives NaN throughout
    (CW 1.0 and MDD 0.0 for a single value).
    """
    v = _clean(values)
    if v.size == 0 or not v[0] > 0.0:
        return dict.fromkeys(("APY", "CW", "CR", "ASR", "MDD", "AVO"), NAN)
    r = v[1:] / v[:-1] - 1.0
    return {
        "APY": annual_return(r, periods_per_year),
        "CW": float(v[-1] / v[0]),
        "CR": calmar(r, periods_per_year),
        "ASR": sharpe(r, periods_per_year),
        "MDD": max_drawdown(r),
        "AVO": annual_volatility(r, periods_per_year),
    }


def storm_coded_metrics(
    returns: pd.Series,
    sortino_denominator: Literal["downside", "mdd"] = "downside",
) -> dict[str, float]:
    """The metrics as the official STORM code computes them (for parity tables only).

    N daily returns R, W_t = prod_{s<=t} (1 + R_s), std = population std (ddof=0):

        storm_arr = (W_N - 1) / N * 252                  simple, not compounded
        storm_sr  = mean(R) * sqrt(N) / std(R)           sqrt(N), not sqrt(252)
        storm_vol = std(R)                               daily
        storm_dd  = std(R[R < 0])                        daily downside deviation
        storm_mdd = max_t (peak_t - W_t) / peak_t        peak starts at W_1, not 1
        storm_cr  = mean(R) * 252 / storm_mdd
        storm_sor = mean(R) * 252 / storm_dd             ("downside", portfolio code)
                  = mean(R) * 252 / storm_mdd            ("mdd", trading script, D11)
        storm_cw  = W_N - 1                              V_N / V_0 - 1

    The code reports ARR and MDD x 100; here all are fractions. Where the code would divide
    by zero (constant series, fewer than 2 losing days, no drawdown) the value is NaN.
    """
    if sortino_denominator not in ("downside", "mdd"):
        raise ValueError(f"sortino_denominator must be 'downside' or 'mdd', "
                         f"not {sortino_denominator!r}")
    r = _clean(returns)
    keys = ("storm_arr", "storm_sr", "storm_vol", "storm_dd", "storm_mdd", "storm_cr",
            "storm_sor", "storm_cw")
    if r.size == 0:
        return dict.fromkeys(keys, NAN)
    n = r.size
    w = np.cumprod(1.0 + r)
    mean = float(np.mean(r))
    vol = 0.0 if _is_constant(r) else float(np.std(r))
    losses = r[r < 0.0]
    dd = float(np.std(losses)) if losses.size else NAN
    if losses.size and _is_constant(losses):
        dd = 0.0
    mdd = float(np.max((np.maximum.accumulate(w) - w) / np.maximum.accumulate(w)))
    return {
        "storm_arr": (float(w[-1]) - 1.0) / n * PERIODS_PER_YEAR,
        "storm_sr": _ratio(mean * math.sqrt(n), vol),
        "storm_vol": vol,
        "storm_dd": dd,
        "storm_mdd": mdd,
        "storm_cr": _ratio(mean * PERIODS_PER_YEAR, mdd),
        "storm_sor": _ratio(mean * PERIODS_PER_YEAR, dd if sortino_denominator == "downside"
                            else mdd),
        "storm_cw": float(w[-1]) - 1.0,
    }
