"""Validation RankIC on every stock, paired by seed (model choice, issue 9; validation only).

    python benchmarks/valid_every_stock.py [--data PATH] [--universe dj30|all]
        [--variants storm storm:stacked_read=token storm-ts] [--seeds 1 2 3 4 5]
        [--threads 1] [--preset small] --cache-dir DIR [--daily-out FILE.csv]

`storm_validation.py` scores a fit by its selection score, the best 3-epoch mean of the
validation RankIC logged while training (on the S&P 500 over a fixed sample of 128
stocks). A read stacked on the model after training (`stacked_read`) has no such score, so
this script scores every variant alike, from `predict`: the mean over the validation
period's labelled dates of the daily RankIC (Spearman, every stock with a row and a label)
of the scores against the next-day return. With several variants it prints each one minus
the first: per seed, paired by day (mean and Newey-West se of the daily difference), and
over the seeds both have, mean ± se (seed-to-seed). Variants are as in
`storm_validation.py` (``name[:key=value,...]``); a fit missing from the cache is trained
and saved there. Skips (exit 0) when the data is absent. The test period is not read.
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from bench_training import add_paper_arguments, paper_data, paper_predictor, parse_variant

log = logging.getLogger("valid_every_stock")


def daily_valid_rank_ic(predictor, data, split) -> pd.Series:
    """The fitted predictor's daily RankIC over the validation period's labelled dates."""
    from storm_bt.evaluation.ic import daily_rank_ic

    ends = data.sample_ends(*split.valid, predictor.history, labelled=True)
    scores = predictor.predict(data, *split.valid).loc[data.dates[ends]]
    realised = pd.DataFrame(np.where(data.valid[ends], data.labels[ends], np.nan),
                            index=scores.index, columns=scores.columns)
    return daily_rank_ic(scores, realised)


def paired(daily: dict[tuple[str, int], pd.Series], reference: str) -> pd.DataFrame:
    """Per (variant, seed) other than ``reference``: its mean daily RankIC minus the
    reference's of the same seed, over the days both have, with its Newey-West se."""
    from storm_bt.evaluation.significance import newey_west_se

    rows = []
    for (variant, seed), series in daily.items():
        if variant == reference or (reference, seed) not in daily:
            continue
        diff = (series - daily[(reference, seed)]).dropna()
        rows.append({"variant": variant, "seed": seed, "minus reference": diff.mean(),
                     "daily NW se": newey_west_se(diff.to_numpy())})
    return pd.DataFrame(rows)


def over_seeds(pairs: pd.DataFrame) -> pd.DataFrame:
    """Mean ± se (seed-to-seed) of each variant's paired difference, and seeds ahead."""
    def summary(d: pd.Series) -> pd.Series:
        se = d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else float("nan")
        return pd.Series({"seeds": len(d), "mean": d.mean(), "se": se,
                          "ahead": int((d > 0).sum())})

    return pairs.groupby("variant", sort=False)["minus reference"].apply(summary).unstack()


def main(argv: list[str] | None = None) -> int:
    import torch

    from reports.io import atomic_write_csv

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_paper_arguments(parser)
    parser.add_argument("--variants", nargs="+", default=["storm", "storm-ts"])
    parser.add_argument("--cache-dir", type=Path, required=True)
    parser.add_argument("--daily-out", type=Path, default=None,
                        help="also write every daily RankIC (date, variant, seed) to this CSV")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if not args.data.exists():
        log.info("SKIP valid_every_stock: %s not found", args.data)
        return 0
    torch.set_num_threads(args.threads)
    data, split = paper_data(args.data, args.universe)
    daily, rows = {}, []
    for text in args.variants:
        name, overrides = parse_variant(text)
        for seed in args.seeds:
            predictor = paper_predictor(args, name, seed, args.cache_dir, **overrides)
            predictor.fit(data, split)
            series = daily_valid_rank_ic(predictor, data, split)
            daily[(text, seed)] = series
            stacked = predictor.config().get("stacked_read")
            rows.append({"variant": text, "seed": seed, "valid RankIC": series.mean(),
                         "days": len(series),
                         "source": "trained" if predictor.source == "trained" else "cache",
                         "stacked lambda": None if stacked is None else stacked["lambda"]})
            log.info("%s seed %d: %s", text, seed, rows[-1])
    table = pd.DataFrame(rows)
    if args.daily_out is not None:
        frames = [series.rename("RankIC").rename_axis("date").reset_index()
                  .assign(variant=variant, seed=seed) for (variant, seed), series in daily.items()]
        atomic_write_csv(pd.concat(frames), args.daily_out, index=False)
    log.info("%s: mean daily validation RankIC, every stock\n%s", args.data.name,
             table.round(4).to_string(index=False))
    if len(args.variants) > 1:
        pairs = paired(daily, args.variants[0])
        log.info("\nminus %s, paired by seed and day\n%s\n\nover seeds\n%s", args.variants[0],
                 pairs.round(4).to_string(index=False), over_seeds(pairs).round(4).to_string())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
