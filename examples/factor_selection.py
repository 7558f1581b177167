"""Select STORM factors by codebook cluster (the paper's factor selection), out of sample.

    python examples/factor_selection.py [--preset tiny|small] [--epochs N] [--clusters 8]
                                        [--top 2] [--data embedded] [--out DIR]

1. fit STORM on the training range of the data (the embedded sample by default);
2. read its factors (`StormPredictor.factors`) on the validation and test ranges and print
   how the codebooks are used (perplexity, most used codes);
3. cluster the time-series codebook, score each cluster's exposure by RankIC on the
   validation range, keep the best `--top` (`storm_bt.evaluation.factor_selection`);
4. report the selected composite's IC / RankIC on the test range beside the model's own
   prediction, and write both tables as CSV into --out.

The choice sees only validation returns, so the test numbers are out of sample.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import pandas as pd

from reports import atomic_write_csv, ensure_writable_dir
from storm_bt.data import load_panel
from storm_bt.features.dataset import build_feature_set, make_split
from storm_bt.evaluation.ic import ic_summary
from storm_bt.evaluation.factor_selection import (cluster_codebook, cluster_exposures, codebook_usage,
                                       select_clusters)
from storm_bt.models import make_predictor

log = logging.getLogger("factor_selection")


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="embedded")
    p.add_argument("--tickers", nargs="+")
    p.add_argument("--preset", default="tiny", choices=["tiny", "small", "paper"])
    p.add_argument("--epochs", type=int)
    p.add_argument("--clusters", type=int, default=8)
    p.add_argument("--top", type=int, default=2)
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--split", nargs=4, metavar=("TRAIN", "VALID", "TEST", "END"),
                   help="the four split dates (default: the data's default split)")
    p.add_argument("--cache-dir", default=".cache/storm_bt/checkpoints")
    p.add_argument("--out", default="runs/factor-selection")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")

    panel = load_panel(args.data, args.tickers)
    split = make_split(panel.dates, *(args.split or []))
    panel = panel.until(split.test_end)
    data = build_feature_set(panel)
    model = make_predictor("storm", preset=args.preset, seed=args.seed, epochs=args.epochs,
                           num_threads=args.threads, cache_dir=args.cache_dir)
    model.fit(data, split)

    tickers = list(data.tickers)
    realised = pd.DataFrame(data.labels, index=data.dates, columns=tickers)
    valid = model.factors(data, *split.valid)
    test = model.factors(data, *split.test)

    usage = {}
    for branch in ("ts", "cs"):
        codebook = model.model.branches[branch].quantizer.codebook.detach().cpu().numpy()
        table, perplexity = codebook_usage(valid[f"codes_{branch}"], len(codebook))
        usage[branch] = (codebook, table)
        log.info("%s codebook: %d codes, %d used on the validation range, perplexity %.1f; "
                 "top codes %s", branch, len(codebook), int((table["count"] > 0).sum()), perplexity,
                 ", ".join(f"{int(c)}:{s:.0%}" for c, s in table[["code", "share"]].head(5).to_numpy()))

    code_cluster = cluster_codebook(usage["ts"][0], args.clusters, seed=args.seed)
    x_valid = cluster_exposures(valid["codes_ts"], code_cluster, len(tickers), args.clusters)
    x_test = cluster_exposures(test["codes_ts"], code_cluster, len(tickers), args.clusters)
    selection = select_clusters(x_valid, realised.loc[valid["dates"]].to_numpy(), valid["dates"],
                                tickers, args.top)
    composite = pd.DataFrame(selection.signal(x_test), index=test["dates"], columns=tickers)
    own = model.predict(data, *split.test).reindex(test["dates"])
    real_test = realised.reindex(test["dates"])
    results = pd.DataFrame({
        f"clusters {selection.selected}": ic_summary(composite, real_test),
        "storm prediction": ic_summary(own, real_test),
    }).T

    out = ensure_writable_dir(Path(args.out))
    atomic_write_csv(selection.scores, out / "cluster_scores.csv")
    atomic_write_csv(results, out / "selected_vs_model.csv")
    print(f"\nValidation RankIC of each time-series code cluster ({args.clusters} clusters):\n")
    print(selection.scores.to_markdown(floatfmt=".4f"))
    print(f"\nSelected {selection.selected} (signs {selection.signs}); test "
          f"{split.test[0].date()} .. {split.test[1].date()}:\n")
    print(results.to_markdown(floatfmt=".4f"))
    return {"selection": selection, "results": results}


if __name__ == "__main__":
    main()
    sys.exit(0)
