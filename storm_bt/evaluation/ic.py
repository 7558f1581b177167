"""Factor evaluation, engine-free: pure functions on date x ticker frames (alphalens style).

`pred` holds the model's score for each (date, ticker) and `realised` the return it tried
to predict (e.g. the next-day return), same index and columns, NaN = missing. On each date
t only tickers with both values count; a date with fewer than 3 such tickers is skipped,
and so is a date where a correlation is undefined (a constant column of values).

    IC_t      = Pearson(pred_t, realised_t) across tickers
    RankIC_t  = Spearman: Pearson of the ranks, ties given their average rank
    coded_t   = cov_pop(rk pred, rk real) / (std_1(rk pred) * std_1(rk real)), ranks by a
                stable double argsort (ties by column order), as STORM's rankic.py does:
                = (n - 1) / n * Spearman when there are no ties (STORM_SPEC section 6, D22)
    ICIR      = mean_t IC_t / std_t(IC_t, ddof=1), daily, not annualised (same for RankIC)

`quantile_returns` buckets tickers by score each day into n equal-count quantiles
(q = floor((rank - 1) * n / n_t) + 1 with rank 1..n_t by score, ties by column order) and
averages their realised returns; top minus bottom is the long-short spread.
`zscore_rows` standardises each date across its tickers (as seed ensembles and factor
composites combine scores on different scales).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

#: Fewest tickers with both values for a date to count.
MIN_TICKERS = 3


def _check_frames(pred: pd.DataFrame, realised: pd.DataFrame) -> None:
    if pred.shape != realised.shape:
        raise ValueError(f"pred has shape {pred.shape} but realised {realised.shape}")
    if not pred.index.equals(realised.index):
        raise ValueError("pred and realised have different dates; reindex one to the other")
    if not pred.columns.equals(realised.columns):
        raise ValueError("pred and realised have different tickers; reindex one to the other")


def _paired(pred: pd.DataFrame, realised: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Both as float arrays with NaN wherever either is missing, and the per-date counts."""
    _check_frames(pred, realised)
    x = pred.to_numpy(dtype=np.float64, copy=True)
    y = realised.to_numpy(dtype=np.float64, copy=True)
    both = ~(np.isnan(x) | np.isnan(y))
    x[~both] = np.nan
    y[~both] = np.nan
    return x, y, both.sum(axis=1)


def _rows(n: np.ndarray) -> np.ndarray:
    """Indices of the dates with enough tickers."""
    return np.flatnonzero(n >= MIN_TICKERS)


def _row_pearson(x: np.ndarray, y: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Pearson correlation of each row pair over its non-NaN entries (both arrays have NaN
    at the same places); NaN for rows with too few tickers or a constant side."""
    out = np.full(x.shape[0], np.nan)
    rows = _rows(n)
    if rows.size == 0:
        return out
    xs, ys = x[rows], y[rows]
    # Exact test for a constant row: a float mean need not equal equal values.
    ok = (np.nanmax(xs, axis=1) > np.nanmin(xs, axis=1)) & (
        np.nanmax(ys, axis=1) > np.nanmin(ys, axis=1))
    xs, ys = xs[ok], ys[ok]
    dx = xs - np.nanmean(xs, axis=1, keepdims=True)
    dy = ys - np.nanmean(ys, axis=1, keepdims=True)
    out[rows[ok]] = np.nansum(dx * dy, axis=1) / np.sqrt(
        np.nansum(dx * dx, axis=1) * np.nansum(dy * dy, axis=1))
    return out


def _series(values: np.ndarray, index: pd.Index, name: str) -> pd.Series:
    keep = np.isfinite(values)
    return pd.Series(values[keep], index=index[keep], name=name)


def _ranks(x: np.ndarray, method: str) -> np.ndarray:
    """Ranks along each row among its non-NaN entries (NaN stays NaN)."""
    return pd.DataFrame(x).rank(axis=1, method=method).to_numpy(dtype=np.float64)


def daily_ic(pred: pd.DataFrame, realised: pd.DataFrame) -> pd.Series:
    """IC_t: Pearson correlation of pred and realised across tickers, per date."""
    x, y, n = _paired(pred, realised)
    return _series(_row_pearson(x, y, n), pred.index, "ic")


def daily_rank_ic(pred: pd.DataFrame, realised: pd.DataFrame) -> pd.Series:
    """RankIC_t: Spearman correlation (average ranks for ties) across tickers, per date."""
    x, y, n = _paired(pred, realised)
    return _series(_row_pearson(_ranks(x, "average"), _ranks(y, "average"), n),
                   pred.index, "rank_ic")


def coded_rank_ic(pred: pd.DataFrame, realised: pd.DataFrame) -> pd.Series:
    """RankIC_t as STORM's code computes it (parity only): ordinal ranks with ties by
    column order, population covariance over unbiased (ddof=1) standard deviations, which
    is (n - 1)/n times Spearman without ties."""
    x, y, n = _paired(pred, realised)
    rows = _rows(n)
    rx, ry, k = _ranks(x[rows], "first"), _ranks(y[rows], "first"), n[rows]
    dx = rx - np.nanmean(rx, axis=1, keepdims=True)
    dy = ry - np.nanmean(ry, axis=1, keepdims=True)
    cov_pop = np.nansum(dx * dy, axis=1) / k
    std_x = np.sqrt(np.nansum(dx * dx, axis=1) / (k - 1))
    std_y = np.sqrt(np.nansum(dy * dy, axis=1) / (k - 1))
    values = np.full(len(n), np.nan)
    values[rows] = cov_pop / (std_x * std_y)
    return _series(values, pred.index, "coded_rank_ic")


def _ir(values: pd.Series) -> float:
    """mean / std(ddof=1); NaN for fewer than 2 values or zero spread."""
    if len(values) < 2:
        return float("nan")
    sd = float(values.std(ddof=1))
    return float(values.mean()) / sd if sd > 0 else float("nan")


def _summary(ic: pd.Series, ric: pd.Series, n: np.ndarray) -> dict[str, float]:
    """IC, ICIR, RankIC, RankICIR of the daily series, and n_days from the per-date counts."""
    return {
        "IC": float(ic.mean()) if len(ic) else float("nan"),
        "ICIR": _ir(ic),
        "RankIC": float(ric.mean()) if len(ric) else float("nan"),
        "RankICIR": _ir(ric),
        "n_days": float(np.count_nonzero(n >= MIN_TICKERS)),
    }


def ic_summary(pred: pd.DataFrame, realised: pd.DataFrame, parity: bool = False) -> dict[str, float]:
    """IC, ICIR, RankIC, RankICIR (means and mean/std of the daily series) and n_days.

    n_days is the number of dates with at least 3 tickers carrying both values. With
    `parity`, also CodedRankIC and CodedRankICIR as STORM's code reports them:
    mean(coded_t) / (std(coded_t, ddof=1) + 1e-6), 0 for a single day (NaN for none).
    """
    out = _summary(daily_ic(pred, realised), daily_rank_ic(pred, realised),
                   _paired(pred, realised)[2])
    if parity:
        coded = coded_rank_ic(pred, realised)
        out["CodedRankIC"] = float(coded.mean()) if len(coded) else float("nan")
        if len(coded) > 1:
            out["CodedRankICIR"] = float(coded.mean()) / (float(coded.std(ddof=1)) + 1e-6)
        else:
            out["CodedRankICIR"] = 0.0 if len(coded) == 1 else float("nan")
    return out


def zscore_rows(x: np.ndarray, flat: float = 0.0) -> np.ndarray:
    """Each row (date) of x standardised across its non-missing columns (stocks):
    (x - mean) / std (population std); a row without spread (constant, a single value, or
    all missing) becomes ``flat`` (0.0: no tilt; NaN: no ranking at all)."""
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)       # all-NaN rows: no noise
        mean = np.nanmean(x, axis=1, keepdims=True)
        std = np.nanstd(x, axis=1, keepdims=True)
        return np.where(std > 0, (x - mean) / std, flat)


@dataclass(frozen=True)
class QuantileReturns:
    """Mean realised return per score quantile.

    Attributes:
        by_quantile: date x quantile (1 = lowest scores .. n = highest).
        spread: top minus bottom quantile per date (the long-short return).
    """

    by_quantile: pd.DataFrame
    spread: pd.Series

    @property
    def mean(self) -> pd.Series:
        """Average over dates of each quantile's return."""
        return self.by_quantile.mean()


def quantile_returns(
    pred: pd.DataFrame, realised: pd.DataFrame, n_quantiles: int = 5
) -> QuantileReturns:
    """Mean realised return of each score quantile per date, and top minus bottom.

    A date needs at least max(3, n_quantiles) tickers with both values, so that every
    quantile holds one ticker; other dates are skipped.
    """
    if n_quantiles < 2:
        raise ValueError(f"n_quantiles must be at least 2, not {n_quantiles}")
    x, y, n = _paired(pred, realised)
    keep = n >= max(MIN_TICKERS, n_quantiles)
    rank = _ranks(x[keep], "first")
    n_t = n[keep][:, None].astype(np.float64)
    bucket = np.floor((rank - 1.0) * n_quantiles / n_t) + 1.0
    yk = y[keep]
    cols = {}
    for q in range(1, n_quantiles + 1):  # each bucket is non-empty on a kept date
        inq = bucket == q
        cols[q] = np.where(inq, yk, 0.0).sum(axis=1) / inq.sum(axis=1)
    by_q = pd.DataFrame(cols, index=pred.index[keep])
    by_q.columns.name = "quantile"
    spread = (by_q[n_quantiles] - by_q[1]).rename("top_minus_bottom")
    return QuantileReturns(by_q, spread)


def score_predictions(pred: pd.DataFrame, realised: pd.DataFrame,
                      n_quantiles: int) -> tuple[dict[str, float], pd.DataFrame]:
    """The scores of one prediction frame (date x ticker) against realised returns, aligned
    to pred's dates and tickers first: `ic_summary` plus Q5_Q1, the mean over dates of the
    top score quantile's return minus the bottom one's; and the daily series behind them,
    a frame indexed by date with columns IC and RankIC."""
    realised = realised.reindex(index=pred.index, columns=pred.columns)
    ic, ric = daily_ic(pred, realised), daily_rank_ic(pred, realised)
    scores = _summary(ic, ric, _paired(pred, realised)[2])        # as ic_summary, once
    spread = quantile_returns(pred, realised, n_quantiles).spread
    scores["Q5_Q1"] = float(spread.mean()) if len(spread) else float("nan")
    return scores, pd.DataFrame({"IC": ic, "RankIC": ric})
