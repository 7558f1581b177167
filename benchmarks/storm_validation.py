"""Validation-only comparison of STORM variants on one universe (model choice, issue 9).

    python benchmarks/storm_validation.py [--data PATH] [--universe dj30|all]
        [--variants storm storm-ts storm:fusion=cross] [--seeds 1] [--epochs N]
        [--threads 1] [--preset small] [--cache-dir DIR]

Split (STORM_SPEC D13 fixed): train 2008-04-01 .. 2019-03-31, valid 2019-04-01 ..
2021-03-31. Only the validation range is scored: the test period enters no choice. A
variant is a registry-like name (storm, storm-ts, storm-cs) with optional
``:key=value,key=value`` overrides (model or training settings). For each variant and
seed it prints the per-epoch valid RankIC, its 3-epoch mean, the restored epoch, the last
epoch's diagnostics (gradient shares, KL, posterior train RankIC, codes in use) and the
training time (from the fit's log, also for a fit reused from the cache); with several
variants, each one's score minus the first variant's, paired by seed (mean ± standard
error). Skips (exit 0) when the data is absent. With ``--cache-dir`` each fit is
saved to (or reused from) the checkpoint cache, under the same key a `factors` or
`portfolio` run on the same tickers, split, settings and seed would use, so a validation A/B
can feed a later test run at no cost.
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

import pandas as pd
import torch

from bench_training import (add_paper_arguments, paper_data, paper_predictor, parse_variant,
                            peak_rss_gb)

log = logging.getLogger("storm_validation")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_paper_arguments(parser)
    parser.add_argument("--variants", nargs="+", default=["storm", "storm-ts"])
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="checkpoint cache to save fits to and reuse them from "
                             "(default: none, every fit is trained)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if not args.data.exists():
        log.info("SKIP storm_validation: %s not found", args.data)
        return 0
    torch.set_num_threads(args.threads)
    data, split = paper_data(args.data, args.universe)
    rows = []
    for text in args.variants:
        name, overrides = parse_variant(text)
        for seed in args.seeds:
            settings = {"epochs": args.epochs, **overrides}   # storm:epochs=25 beats --epochs
            predictor = paper_predictor(args, name, seed, args.cache_dir, **settings)
            predictor.fit(data, split)
            result = predictor.train_result
            epochs = result["epochs"]
            log.info("%s seed %d: valid RankIC by epoch %s", text, seed,
                     " ".join(f"{e['valid_rank_ic']:+.4f}" for e in epochs))
            log.info("   last epoch: %s | %s", {k: round(v, 3) for k, v in
                                                  epochs[-1]["diagnostics"].items()},
                     {k: round(v, 1) for k, v in epochs[-1]["codebook"].items()})
            rows.append({"variant": text, "seed": seed, "best epoch": result["best_epoch"],
                         "valid RankIC (restored)": result["best_valid_rank_ic"],
                         "valid RankIC 3-epoch mean": result["best_smoothed_rank_ic"],
                         "mean valid RankIC, all epochs": sum(e["valid_rank_ic"] for e in epochs)
                         / len(epochs),
                         "epochs run": len(epochs),
                         # the training log's seconds: a fit reused from the cache keeps them
                         "s/epoch": result["seconds"] / len(epochs),
                         "source": "trained" if predictor.source == "trained" else "cache",
                         "rss GB": peak_rss_gb()})
    table = pd.DataFrame(rows)
    log.info("\n%s", table.round(4).to_string(index=False))
    if len(args.variants) > 1:
        log.info("\nSelection score (3-epoch mean) minus %s's, paired by seed (mean ± se over "
                 "the seeds both have; seeds ahead):\n%s", args.variants[0],
                 paired_scores(table, args.variants[0]).to_string(index=False))
    return 0


def paired_scores(table: pd.DataFrame, reference: str) -> pd.DataFrame:
    """Each variant's selection score minus ``reference``'s, paired by seed
    (`storm_bt.experiments.factors.seed_pairs` on the validation score alone)."""
    from storm_bt.experiments.factors import seed_pairs

    scores = table.rename(columns={"variant": "model",
                                   "valid RankIC 3-epoch mean": "valid_score"})
    pairs = seed_pairs(scores[["model", "seed", "valid_score"]], reference)
    return pairs[["model", "vs", "seeds", "valid_diff", "valid_se", "valid_ahead"]].round(4)


if __name__ == "__main__":
    raise SystemExit(main())
