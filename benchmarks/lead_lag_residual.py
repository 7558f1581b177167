"""Does a fitted STORM already hold the lead-lag read? (validation only)

`state_conditioning.py` finds that the market's day return m_t read through the four
characteristics c_s (dollar volume, volatility, momentum, reversal) ranks next-day returns
better than the characteristics alone. This script asks whether a fitted model's own scores
already carry that information. For each seed's cached fit (``--variant``, D44's ``storm``
by default) it takes the validation scores p_{t,s} (every stock, z-scored per day) and
cross-fits, over the validation period's two years (fit on one, score the other, then the
other way round), the pooled least squares (ridge, lambda 1e-2)

    without:  y = a p                   (the model's own ranking wherever a > 0)
    with:     y = a p + m_t c'g

where y is the next-day return z-scored per day. The constant part c'b is left out of
both: fitted on one validation year it does not carry to the other (with it, the
cross-fitted "without" falls to 0.002-0.018 on the S&P 500, far below the model alone),
while the market's term holds across years (`state_conditioning.py`). It prints the mean
daily RankIC of p alone, of both combinations, and "with minus without" paired by day
(Newey-West se), per seed and over seeds. If the model already holds the read, "with
minus without" is about 0; if not, a read stacked on the fitted model would add it. Nothing is retrained (a fit missing
from the cache is trained, as `storm_validation.py` would) and the test period is not read.

    python benchmarks/lead_lag_residual.py --data ../shared/data/sp500_daily.parquet \
        --universe all --seeds 1 2 3 4 5 --threads 2 --cache-dir .cache/storm_bt/checkpoints
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from bench_training import (add_paper_arguments, load_universe, paper_predictor,
                            paper_split, parse_variant)
from state_conditioning import (CHARACTERISTICS, MARKET_DAY, daily_ic, fit_ridge,
                                labelled_days, market_state, next_day_labels, ridge_scores,
                                standardise_state, stock_signals)

log = logging.getLogger("lead_lag_residual")


def stacked_inputs(scores: np.ndarray, chars: np.ndarray, market: np.ndarray,
                   with_market: bool) -> np.ndarray:
    """(D, S, 1 [+ K]): [p] or [p, m_t c] per date and stock (0 where p is missing)."""
    p = np.nan_to_num(scores, nan=0.0)[..., None]
    parts = [p] + ([chars * market[:, None, None]] if with_market else [])
    return np.concatenate(parts, axis=2).astype(np.float32)


def cross_fitted_ic(inputs: np.ndarray, labels: np.ndarray, folds: list[np.ndarray],
                    valid: np.ndarray, dates, lam: float = 1e-2) -> pd.Series:
    """Daily RankIC of the ridge on ``inputs``, each fold scored by the fit on the others."""
    parts = []
    for k, days in enumerate(folds):
        fit = np.concatenate([f for j, f in enumerate(folds) if j != k])
        beta = fit_ridge(inputs, labels, None, fit, (lam,))[lam]
        parts.append(daily_ic(ridge_scores(inputs, None, beta, days, valid), labels, days,
                              dates))
    return pd.concat(parts).sort_index()


def main(argv: list[str] | None = None) -> int:
    from storm_bt.evaluation.ic import zscore_rows
    from storm_bt.evaluation.significance import newey_west_se
    from storm_bt.features.dataset import build_feature_set

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_paper_arguments(parser)
    parser.add_argument("--variant", default="storm")
    parser.add_argument("--cache-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if not args.data.exists():
        log.info("SKIP lead_lag_residual: %s not found", args.data)
        return 0
    panel = load_universe(args.data, args.universe)
    data = build_feature_set(panel)                 # the model's inputs, from the same panel
    split = paper_split(data)
    returns = panel.returns().to_numpy()
    labels = next_day_labels(returns)
    chars = stock_signals(panel)[:, :, CHARACTERISTICS]
    train = labelled_days(panel.dates, labels, split.train[0], split.train[1], 252)
    market = standardise_state(market_state(returns), train)[:, MARKET_DAY]
    middle = split.valid[0] + pd.DateOffset(years=1)
    folds = [labelled_days(panel.dates, labels, split.valid[0], middle - pd.Timedelta(days=1),
                           252),
             labelled_days(panel.dates, labels, middle, split.valid[1], 252)]
    days = np.concatenate(folds)
    name, overrides = parse_variant(args.variant)
    rows = []
    for seed in args.seeds:
        predictor = paper_predictor(args, name, seed, args.cache_dir, **overrides)
        predictor.fit(data, split)
        frame = predictor.predict(data, *split.valid)
        scores = np.full(labels.shape, np.nan)
        scores[panel.dates.get_indexer(frame.index)] = frame.to_numpy()
        scores = zscore_rows(scores, flat=np.nan)
        alone = daily_ic(scores[days], labels, days, panel.dates)
        ics = {flag: cross_fitted_ic(stacked_inputs(scores, chars, market, flag), labels,
                                     folds, panel.mask, panel.dates) for flag in (False, True)}
        diff = (ics[True] - ics[False]).dropna()
        rows.append({"seed": seed, "model alone": alone.mean(), "without": ics[False].mean(),
                     "with": ics[True].mean(), "with minus without": diff.mean(),
                     "NW se": newey_west_se(diff.to_numpy())})
        log.info("seed %d: %s", seed, {k: round(float(v), 4) for k, v in rows[-1].items()})
    table = pd.DataFrame(rows)
    d = table["with minus without"]
    log.info("%s, %s, validation cross-fitted over its two years\n%s\nwith minus without over "
             "seeds: %+.4f ± %.4f (%d of %d up)", args.data.name, args.variant,
             table.round(4).to_string(index=False), d.mean(),
             d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else float("nan"),
             int((d > 0).sum()), len(d))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
