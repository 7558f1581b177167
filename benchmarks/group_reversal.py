"""Reversal against the market and against a stock's group, on the validation period.

Information for the cs_groups candidate (journal, thirty-first session): does a stock's
past return measured against its group (`storm_bt.features.groups`, fitted on the training
period) rank next-day returns better than the same return measured against the market?
For k in (1, 5, 21) days and each validation date t,

    s_t = -(r_{t-k..t})                      raw reversal (the last k days' return, negated)
    s_t - mean_{group(s)} s_t                 group-relative reversal (stocks without a
                                              group: relative to every stock)
    mean_{group(s)} s_t                       the group's own reversal

and prints the mean daily RankIC of each against r_{t..t+1}, with its Newey-West standard
error. The test period is not read.

    python benchmarks/group_reversal.py --data ../shared/data/sp500_daily.parquet --universe all
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from bench_training import DEFAULT_DATA, paper_data

log = logging.getLogger("group_reversal")


def past_returns(labels: np.ndarray, k: int) -> np.ndarray:
    """(D, S): at t, the sum of the k daily returns that end at t (labels[t - k .. t - 1]);
    NaN for the first k days and wherever one of the k is missing."""
    return pd.DataFrame(labels).rolling(k).sum().shift(1).to_numpy()


def group_means(signal: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """(D, S): each stock's group mean of ``signal`` on the day (every stock's mean for a
    stock without a group)."""
    out = np.empty_like(signal)
    for g in np.unique(groups):
        members = groups == g if g else np.ones(len(groups), dtype=bool)
        out[:, groups == g] = np.nanmean(signal[:, members], axis=1, keepdims=True)
    return out


def main(argv: list[str] | None = None) -> int:
    import warnings

    from storm_bt.evaluation.ic import daily_rank_ic
    from storm_bt.evaluation.significance import newey_west_se
    from storm_bt.features.groups import return_groups

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--universe", choices=["dj30", "all"], default="dj30")
    parser.add_argument("--groups", type=int, default=8)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if not args.data.exists():
        log.info("SKIP group_reversal: %s not found (set STORM_BT_SHARED_DATA or --data)",
                 args.data)
        return 0
    warnings.filterwarnings("ignore", "Mean of empty slice", RuntimeWarning)
    data, split = paper_data(args.data, args.universe)
    groups = return_groups(data, split, args.groups)
    labels = np.asarray(data.labels, dtype=float)
    # validation dates whose next-day return is realised inside the validation period
    days = data.sample_ends(*split.valid, history=1)
    realised = pd.DataFrame(labels[days], index=data.dates[days], columns=data.tickers)
    rows = []
    for k in (1, 5, 21):
        raw = -past_returns(labels, k)
        for name, signal in (("raw", raw), ("group-relative", raw - group_means(raw, groups)),
                             ("group", np.where(groups > 0, group_means(raw, groups), np.nan))):
            ic = daily_rank_ic(pd.DataFrame(signal[days], index=realised.index,
                                            columns=data.tickers), realised).dropna()
            rows.append({"days": k, "signal": name, "mean RankIC": ic.mean(),
                         "NW se": newey_west_se(ic.to_numpy()), "dates": len(ic)})
    log.info("%s, %d groups (sizes %s), validation %s .. %s\n%s", args.data.name, args.groups,
             np.bincount(groups).tolist(), split.valid[0].date(), split.valid[1].date(),
             pd.DataFrame(rows).round(4).to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
