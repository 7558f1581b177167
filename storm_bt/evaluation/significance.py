"""Is one factor better than another? Standard errors robust to autocorrelation.

Daily RankICs are autocorrelated (overlapping information, regimes), so the naive standard
error std/sqrt(T) of their mean is too small. For a daily series x_1..x_T with mean x̄ the
Newey-West (Bartlett kernel) long-run variance with L lags is

    S = γ_0 + 2 Σ_{l=1..L} (1 − l/(L+1)) γ_l,     γ_l = (1/T) Σ_{t>l} (x_t − x̄)(x_{t−l} − x̄)

and se(x̄) = sqrt(S / T). The default L = floor(4 (T/100)^(2/9)) (Newey and West, 1994).

A paired comparison of two factors scores both on the same days: d_t = a_t − b_t, and
t = mean(d) / se_NW(mean(d)); |t| > 2 is a difference at about the 5% level.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd


def default_lags(n: int) -> int:
    """L = floor(4 (T/100)^(2/9)), at least 0."""
    return max(0, int(math.floor(4.0 * (n / 100.0) ** (2.0 / 9.0)))) if n > 0 else 0


def newey_west_se(x, lags: int | None = None) -> float:
    """The Newey-West standard error of the mean of ``x`` (NaNs dropped); NaN below 2 values."""
    v = np.asarray(x, dtype=float)
    v = v[np.isfinite(v)]
    n = v.size
    if n < 2:
        return float("nan")
    lags = default_lags(n) if lags is None else min(int(lags), n - 1)
    e = v - v.mean()
    s = e @ e / n
    for lag in range(1, lags + 1):
        s += 2.0 * (1.0 - lag / (lags + 1.0)) * (e[lag:] @ e[:-lag]) / n
    return float(math.sqrt(max(s, 0.0) / n))


def paired_difference(a: pd.Series, b: pd.Series, lags: int | None = None) -> dict[str, float]:
    """Mean of a_t − b_t over the days both have, its Newey-West standard error and t-stat."""
    both = pd.concat([a.rename("a"), b.rename("b")], axis=1).dropna()
    d = (both["a"] - both["b"]).to_numpy(dtype=float)
    n = d.size
    lags_used = default_lags(n) if lags is None else lags
    se = newey_west_se(d, lags_used)
    mean = float(d.mean()) if n else float("nan")
    t = mean / se if se and np.isfinite(se) and se > 0 else float("nan")
    return {"diff": mean, "se": se, "t": t, "n_days": int(n), "lags": int(lags_used)}
