"""Factor quality of every model over several seeds: IC, ICIR, RankIC, RankICIR.

    python benchmarks/bench_factors.py [--universe dj30|sp500] [--models ...] [--seeds 1 2 3]
                                       [--preset small] [--epochs N] [--jobs N] [--threads N]
                                       [--device auto|cpu|cuda] [--out DIR]
    python benchmarks/bench_factors.py --combine RUN_A RUN_B ...
    python benchmarks/bench_factors.py --valid-vs-test RUN_A RUN_B ...

Runs ``python -m storm_bt.backtest factors`` on the developers' real data with the paper's
split (train 2008-04-01.., valid 2019-04-01.., test 2021-04-01 .. 2024-03-08) and reports
the mean and spread over seeds per model with the wall time. Skips (exit 0) where the data
is absent. The numbers land in DIR/factors.csv and DIR/factors.md. ``--combine`` prints
the report of several `factors` output folders merged into one evaluation (runs split by
model or seed, to share the cores or reuse cached checkpoints): mean ± standard error over
seeds, the paired daily RankIC against STORM recomputed over every run, and the per-seed
rows. Runs of different data, split or training settings, or a (model, seed) found twice,
are refused (`storm_bt.backtest.factors.merge_runs`). ``--valid-vs-test`` asks how well
the validation window ranks fits like the test window: over every (run, model, seed) row of
the runs' factors.csv, the Spearman and Pearson correlation of the selection score
(valid_score) with the test RankIC, across all fits and within each run (each run's mean
taken out, so that only the seed-to-seed differences are compared).
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

DATA = Path(os.environ.get("STORM_BT_SHARED_DATA",
                           Path(__file__).resolve().parents[2] / "shared" / "data"))
FILES = {"dj30": "dj30_daily.csv.gz", "sp500": "sp500_daily.parquet"}
ALL = ["lightgbm", "lstm", "transformer", "factorvae", "storm-ts", "storm-cs", "storm"]

log = logging.getLogger("bench_factors")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--universe", choices=sorted(FILES), default="dj30")
    p.add_argument("--models", nargs="+", default=ALL)
    p.add_argument("--seeds", nargs="+", default=["1", "2", "3"])
    p.add_argument("--preset", default="small")
    p.add_argument("--epochs", help="override the preset's epochs (shorter benchmark)")
    p.add_argument("--jobs", default="1", help="(model, seed) tasks at once (local processes)")
    p.add_argument("--threads", help="torch threads per job (default: the command's, cores / "
                                      "jobs; more oversubscribes the cores)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                   help="torch device (auto: CUDA when present)")
    p.add_argument("--out", default="runs/bench-factors")
    p.add_argument("--combine", nargs="+", metavar="RUN",
                   help="merge the output folders of several factors runs")
    p.add_argument("--valid-vs-test", nargs="+", metavar="RUN",
                   help="correlate each fit's selection score with its test RankIC")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if args.combine:
        return combine(args.combine)
    if args.valid_vs_test:
        return valid_vs_test(args.valid_vs_test)
    path = DATA / FILES[args.universe]
    if not path.exists():
        log.warning("skipped: %s not found (set STORM_BT_SHARED_DATA)", path)
        return 0
    from storm_bt.backtest.cli import main as cli

    argv = ["factors", "--data", str(path), "--models", *args.models, "--seeds", *args.seeds,
            "--preset", args.preset, "--jobs", args.jobs, "--device", args.device,
            "--out", f"{args.out}-{args.universe}", "--log-level", "WARNING"]
    if args.threads:
        argv += ["--threads", args.threads]
    if args.epochs:
        argv += ["--epochs", args.epochs]
    started = time.perf_counter()
    code = cli(argv)
    log.info("%s: %d models x %d seeds in %.0f s", args.universe, len(args.models),
             len(args.seeds), time.perf_counter() - started)
    return code


def combine(folders: list[str]) -> int:
    from storm_bt.backtest.factors import merge_runs, report
    from storm_bt.errors import StormBtError

    try:
        table, _, comparison = merge_runs(folders)
    except StormBtError as error:
        log.error("%s", error)
        return 1
    print(report(table, comparison, f"Factor evaluation merged from {len(folders)} runs"))
    print(table.to_markdown(index=False, floatfmt=".4f"))
    return 0


def valid_vs_test(folders: list[str]) -> int:
    import pandas as pd
    from scipy.stats import pearsonr, spearmanr

    frames = []
    for folder in folders:
        path = Path(folder) / "factors.csv"
        if not path.exists():
            log.error("%s: no factors.csv; pass the output folders of factors runs", folder)
            return 1
        frames.append(pd.read_csv(path).assign(run=folder))
    fits = pd.concat(frames, ignore_index=True).dropna(subset=["valid_score", "RankIC"])
    if len(fits) < 3:
        log.error("%d fits with a selection score and a test RankIC: need at least 3",
                  len(fits))
        return 1
    within = fits[["valid_score", "RankIC"]] - fits.groupby(["run", "model"])[
        ["valid_score", "RankIC"]].transform("mean")
    for label, table in (("across all fits", fits), ("within each run", within)):
        rho, p_rho = spearmanr(table["valid_score"], table["RankIC"])
        r, p_r = pearsonr(table["valid_score"], table["RankIC"])
        print(f"{len(table)} fits, {label}: Spearman {rho:+.3f} (p {p_rho:.2f}), "
              f"Pearson {r:+.3f} (p {p_r:.2f})")
    print(fits[["run", "model", "seed", "valid_score", "RankIC"]].to_markdown(
        index=False, floatfmt=".4f"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
