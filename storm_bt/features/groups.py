"""Groups of stocks from their training-period returns: price-made industries.

The price files hold no industry. Stocks that move together outside the market are grouped
instead, from the returns realised in the training period only:

    r_ts   the label of day t (the return from t to t+1), for t + 1 before the validation
           start; stocks with fewer than ``min_days`` of them get no group (0)
    e_ts = r_ts - mean_s' r_ts'          the day's market move removed (grouped stocks)
    z_ts = (e_ts - mean_t e_ts) / std_t e_ts, 0 where r_ts is missing
    Z = U Sigma V'                        the top k directions of the stocks' correlations
    l_s = (Sigma V')_s / ||(Sigma V')_s||  each stock's unit-length loading
    g_s = 1 + kmeans(l, n_groups)_s      groups 1..G, numbered by their first stock

so a stock's group never depends on a return of the validation or test period.
"""
from __future__ import annotations

import warnings

import numpy as np

from storm_bt.errors import StormBtError
from storm_bt.features.dataset import FeatureSet, Split

#: fewest training returns a stock needs for a group (about a year)
MIN_DAYS = 250


def return_groups(data: FeatureSet, split: Split, n_groups: int, min_days: int = MIN_DAYS,
                  seed: int = 0) -> np.ndarray:
    """(S,) int64: each stock's group 1..``n_groups``, or 0 without enough training returns
    (the module docstring gives the maths). Deterministic for given data, split and seed."""
    from sklearn.cluster import KMeans

    if n_groups < 1:
        raise StormBtError(f"cs_groups={n_groups}: give at least 1 group, or 0 for none")
    lo = int(data.dates.searchsorted(split.train_start, side="left"))
    hi = int(data.dates.searchsorted(split.valid_start, side="left"))
    # labels of days t with t + h < hi: realised before the validation period starts
    returns = np.array(data.labels[lo: max(lo, hi - data.label_horizon)], dtype=np.float64)
    known = np.isfinite(returns)
    grouped = known.sum(axis=0) >= min_days
    groups = np.zeros(len(data.tickers), dtype=np.int64)
    if grouped.sum() < n_groups:
        raise StormBtError(
            f"cs_groups={n_groups}: only {int(grouped.sum())} stocks have {min_days} training "
            f"returns ({split.train_start.date()} .. {split.valid_start.date()}); use fewer "
            "groups (cs_groups) or a longer training period")
    r = returns[:, grouped]
    with warnings.catch_warnings():      # a day no grouped stock has: its row stays NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        excess = r - np.nanmean(r, axis=1, keepdims=True)
    mean = np.nanmean(excess, axis=0)
    std = np.nanstd(excess, axis=0)
    z = np.nan_to_num((excess - mean) / np.where(std > 0, std, 1.0))
    _, sigma, vt = np.linalg.svd(z, full_matrices=False)
    k = min(2 * n_groups, len(sigma))
    loadings = (sigma[:k, None] * vt[:k]).T
    loadings /= np.linalg.norm(loadings, axis=1, keepdims=True).clip(min=1e-12)
    labels = KMeans(n_clusters=n_groups, n_init=10, random_state=seed).fit_predict(loadings)
    # number the groups by their first stock, so the numbering depends on the stocks alone
    order = {label: i + 1 for i, label in enumerate(dict.fromkeys(labels.tolist()))}
    groups[grouped] = [order[label] for label in labels.tolist()]
    return groups
