"""Factor selection by codebook cluster: STORM's discrete codes as inspectable factors.

The time-series branch gives each stock n_blocks tokens per window (time-major: token
index = block * S + stock), each quantised to one of K codebook vectors e_1..e_K. Codes
that lie close in the codebook describe similar local price patterns, so:

1. cluster the codebook: k-means on e_1..e_K into C clusters, g(k) in {0..C-1};
2. exposure of stock s to cluster c at date t, from the window ending at t:

       X_c[t, s] = (1 / n_blocks) * #{ blocks b : g(code[t, b, s]) = c }

   (the share of the stock's tokens whose code falls in cluster c);
3. score each cluster on a selection period (the validation range) by its mean daily
   RankIC against the next-day return, RankIC_c = mean_t Spearman(X_c[t, .], r[t+1, .]);
4. select the `top` clusters by |RankIC_c| and combine them into one signal

       F[t, s] = (1 / top) * sum_{c selected} sign(RankIC_c) * z_t(X_c[t, .])_s

   with z_t the cross-sectional z-score at date t;
5. evaluate F on a later period (the test range) that took no part in the choice.

Only the selection period's returns enter steps 3-4, so the test evaluation is out of
sample. The cross-sectional branch has one token per day shared by all stocks: its codes
describe the market's state (`codebook_usage` shows which), not a ranking of stocks.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from storm_bt.evaluation.ic import zscore_rows


def codebook_usage(codes: np.ndarray, n_codes: int) -> tuple[pd.DataFrame, float]:
    """Counts and shares of each code in `codes` (any shape), and the perplexity.

    perplexity = exp(-sum_k p_k log p_k) with p_k = count_k / total (0 log 0 = 0): the
    number of equally used codes that would give the same entropy.
    """
    counts = np.bincount(np.asarray(codes, dtype=np.int64).ravel(), minlength=n_codes)
    share = counts / max(counts.sum(), 1)
    nz = share[share > 0]
    perplexity = float(np.exp(-(nz * np.log(nz)).sum())) if nz.size else 0.0
    table = pd.DataFrame({"code": np.arange(n_codes), "count": counts, "share": share})
    return table.sort_values("count", ascending=False, kind="stable").reset_index(drop=True), perplexity


def cluster_codebook(codebook: np.ndarray, n_clusters: int, seed: int = 0) -> np.ndarray:
    """Cluster label g(k) of each codebook vector (K, d) by k-means (seeded)."""
    from sklearn.cluster import KMeans

    codebook = np.asarray(codebook, dtype=np.float64)
    if not 1 <= n_clusters <= len(codebook):
        raise ValueError(f"n_clusters must be in 1..{len(codebook)}, got {n_clusters}")
    return KMeans(n_clusters=n_clusters, n_init=10, random_state=seed).fit_predict(codebook)


def cluster_exposures(codes_ts: np.ndarray, code_cluster: np.ndarray, n_stocks: int,
                      n_clusters: int) -> np.ndarray:
    """X (N, C, S): the share of each stock's time-series tokens in each code cluster.

    Args:
        codes_ts: (N, n_blocks * S) code indices per date, time-major (block * S + stock).
        code_cluster: (K,) cluster of each code.
    """
    codes_ts = np.asarray(codes_ts, dtype=np.int64)
    n, length = codes_ts.shape
    if length % n_stocks:
        raise ValueError(f"{length} tokens do not split into {n_stocks} stocks")
    grid = np.asarray(code_cluster)[codes_ts].reshape(n, length // n_stocks, n_stocks)
    onehot = grid[:, :, None, :] == np.arange(n_clusters)[None, None, :, None]  # (N, B, C, S)
    return onehot.mean(axis=1)


@dataclass(frozen=True)
class Selection:
    """The clusters chosen on the selection period.

    Attributes:
        scores: per cluster, the mean daily RankIC on the selection period and its t-stat.
        selected: the chosen cluster ids, best |RankIC| first.
        signs: +1 / -1 per selected cluster (the sign of its RankIC).
    """

    scores: pd.DataFrame
    selected: list[int]
    signs: list[float]

    def signal(self, exposures: np.ndarray) -> np.ndarray:
        """F (N, S): the sign-aligned mean of the selected clusters' z-scored exposures."""
        parts = [s * zscore_rows(exposures[:, c, :]) for c, s in zip(self.selected, self.signs)]
        return np.mean(parts, axis=0)


def select_clusters(exposures: np.ndarray, realised: np.ndarray, dates: pd.DatetimeIndex,
                    tickers: list[str], top: int) -> Selection:
    """Score every cluster by RankIC on the given (selection) dates and keep the `top` best.

    Args:
        exposures: (N, C, S) from `cluster_exposures` for the selection dates.
        realised: (N, S) the next-day returns of those dates (NaN = missing).
    """
    from storm_bt.evaluation.ic import daily_rank_ic

    n_clusters = exposures.shape[1]
    if not 1 <= top <= n_clusters:
        raise ValueError(f"top must be in 1..{n_clusters}, got {top}")
    real = pd.DataFrame(realised, index=dates, columns=tickers)
    rows = []
    for c in range(n_clusters):
        ric = daily_rank_ic(pd.DataFrame(exposures[:, c, :], index=dates, columns=tickers), real)
        mean = float(ric.mean()) if len(ric) else float("nan")
        tstat = mean / float(ric.std(ddof=1)) * np.sqrt(len(ric)) if len(ric) > 1 and ric.std() > 0 \
            else float("nan")
        rows.append({"cluster": c, "RankIC": mean, "t_stat": tstat, "n_days": len(ric)})
    scores = pd.DataFrame(rows).set_index("cluster")
    ranked = scores["RankIC"].abs().fillna(-1).sort_values(ascending=False, kind="stable")
    selected = [int(c) for c in ranked.index[:top]]
    signs = [1.0 if scores.loc[c, "RankIC"] >= 0 else -1.0 for c in selected]
    return Selection(scores, selected, signs)
