"""Walk-forward validation: compare model settings on several out-of-sample years before the
test period, instead of on the one validation window (model choice, issue 9).

    python benchmarks/walk_forward_validation.py [--data PATH] [--universe dj30|all]
        [--variants storm storm:label_norm=cs_rank] [--seeds 1 2] [--folds 4]
        [--block-days 252] [--before 2021-04-01] [--epochs N] [--threads 1] [--preset small]
        [--cache-dir DIR] [--out results.csv]
    python benchmarks/walk_forward_validation.py --summarise a.csv b.csv [--variants ...]

Why: over 25 S&P 500 fits the paper's validation window (2019-04-01 .. 2021-03-31) and the
test window ranked fits with a Spearman correlation of +0.12 (README, "How well the
validation window ranks fits like the test window"), and a fit's selection score is the
maximum of its own smoothed validation curve, so it is biased upwards.

How: the K blocks of ``--block-days`` trading days that end the day before the paper's test
start (2021-04-01) are each predicted by their own fit, as `--refit-every` does in the test
period (`storm_bt.experiments.walkforward.pretest_split`, then `refit_splits`): block k's
model trains from 2008-04-01 to the day before its validation range, selects its epoch on
the 504 trading days just before the block (the paper's validation length), and predicts
the block's days only. So every scored day is out of sample for its fit's weights *and* for
its epoch choice. The last day before the test start is not scored (its label is the return
into the test period): no fit, prediction or score uses a price on or after 2021-04-01.
``--before DATE`` (at most the test start) ends the blocks before an earlier date instead:
``--before 2019-04-01 --folds 2`` scores 2017-04 .. 2019-03, a window that shares no day
with the paper's validation window either, so a setting chosen there can be checked on
days that played no part in its choice.

Reports, per variant and seed: the mean daily RankIC over all blocks' days with its
Newey-West standard error, and per block; per variant, the mean ± se over seeds; and each
variant's daily RankIC minus the first variant's, paired by day and seed, with the mean over
seeds of the paired difference ± its standard error across seeds, and the seed-averaged daily
difference with its Newey-West t (as `factors` reports against STORM). With ``--cache-dir``
every block's fit is saved to or reused from the checkpoint cache (its split is part of the
key).
Skips (exit 0) when the data is absent.
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from bench_training import DEFAULT_DATA, load_universe, parse_variant

log = logging.getLogger("walk_forward_validation")

TRAIN_START = pd.Timestamp("2008-04-01")
TEST_START = pd.Timestamp("2021-04-01")   # the paper's test start: nothing on or after it
VALID_DAYS = 504                          # the paper's validation length, in trading days


def settings_for(text: str, *, preset: str, epochs: int | None, threads: int,
                 cache_dir) -> tuple[str, object]:
    """(model name, `ModelSettings`) of the variant ``text`` (``name[:key=value,...]``), on
    the CPU."""
    from storm_bt.models.registry import ModelSettings

    name, overrides = parse_variant(text)
    items = tuple(f"{k}={v!r}" if not isinstance(v, str) else f"{k}={v}"
                  for k, v in overrides.items())
    return name, ModelSettings(preset=preset, epochs=epochs, device="cpu", threads=threads,
                               cache_dir=cache_dir, overrides=items)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--universe", choices=["dj30", "all"], default="dj30")
    parser.add_argument("--variants", nargs="+", default=None,
                        help="name[:key=value,...] each; the first is the reference "
                             "(default: storm)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1])
    parser.add_argument("--folds", type=int, default=4)
    parser.add_argument("--block-days", type=int, default=252)
    parser.add_argument("--before", type=pd.Timestamp, default=TEST_START,
                        help="the blocks end the trading day before this date (at most the "
                             "test start, 2021-04-01)")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--preset", default="small")
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--out", type=Path, default=None,
                        help="CSV of the daily out-of-sample RankIC of every variant and seed")
    parser.add_argument("--summarise", type=Path, nargs="+", default=None, metavar="CSV",
                        help="fit nothing: summarise the --out files of earlier runs (the "
                             "variants as given with --variants, else as in the files)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    if args.summarise:
        missing = [str(p) for p in args.summarise if not p.exists()]
        if missing:
            parser.error(f"--summarise: no such file {', '.join(missing)}")
        for line in summarise(args.summarise, args.variants):
            log.info(line)
        return 0
    args.variants = args.variants or ["storm"]
    if not args.data.exists():
        log.info("SKIP walk_forward_validation: %s not found", args.data)
        return 0
    import torch

    from reports.io import atomic_write_csv
    from storm_bt.evaluation.ic import daily_rank_ic
    from storm_bt.evaluation.significance import newey_west_se
    from storm_bt.experiments.walkforward import walk_forward
    from storm_bt.features.dataset import build_feature_set

    torch.set_num_threads(args.threads)
    data = build_feature_set(load_universe(args.data, args.universe))
    split = validation_split(data.dates, args.folds, args.block_days, parser, args.before)
    realised = pd.DataFrame(data.labels, index=data.dates, columns=list(data.tickers))
    daily: dict[tuple[str, int], pd.Series] = {}
    rows = []
    for text in args.variants:
        name, settings = settings_for(text, preset=args.preset, epochs=args.epochs,
                                      threads=args.threads, cache_dir=args.cache_dir)
        for seed in args.seeds:
            result = walk_forward(name, seed, settings, data, split, args.block_days)
            ic = daily_rank_ic(result.predictions, realised.loc[result.predictions.index])
            daily[text, seed] = ic
            row = {"variant": text, "seed": seed, "RankIC": ic.mean(),
                   "se (NW)": newey_west_se(ic), "days": ic.size,
                   "fit s": round(result.fit_seconds)}
            for k, block in enumerate(result.splits):
                row[f"block {k + 1} ({block.test_start.date()})"] = ic.loc[
                    block.test_start:block.test_end].mean()
            rows.append(row)
            log.info("%s seed %d: walk-forward RankIC %.4f ± %.4f over %d days", text, seed,
                     row["RankIC"], row["se (NW)"], row["days"])
    table = pd.DataFrame(rows)
    log.info("blocks: %s", "; ".join(f"train {s.train[0].date()}..{s.train[1].date()}, valid "
                                     f"{s.valid[0].date()}..{s.valid[1].date()}, scored "
                                     f"{s.test[0].date()}..{s.test[1].date()}"
                                     for s in result.splits))
    log.info("\n%s", table.round(4).to_string(index=False))
    for line in summary_lines(daily, args.variants, args.seeds):
        log.info(line)
    if args.out is not None:
        atomic_write_csv(pd.DataFrame({f"{v}|{s}": ic for (v, s), ic in daily.items()}),
                         args.out)
    return 0


def summary_lines(daily: dict[tuple[str, int], pd.Series], variants: list[str],
                  seeds: list[int]) -> list[str]:
    """Per variant: the mean over seeds of its walk-forward RankIC ± se; for each variant
    after the first (the reference), its difference to the reference paired by seed (mean ±
    se over seeds, seeds ahead) and the seed-averaged daily difference with its Newey-West
    se and t."""
    from storm_bt.evaluation.significance import paired_difference

    reference, lines = variants[0], []
    for text in variants:
        per_seed = np.array([daily[text, s].mean() for s in seeds])
        line = f"{text}: {per_seed.mean():.4f} ± {_se(per_seed):.4f} over {per_seed.size} seeds"
        if text != reference:
            diffs = np.array([(daily[text, s] - daily[reference, s]).mean() for s in seeds])
            line += (f"; minus {reference}, paired by seed: {diffs.mean():+.4f} ± "
                     f"{_se(diffs):.4f}, higher on {int((diffs > 0).sum())} of {diffs.size}")
            pooled = paired_difference(_seed_mean(daily, text, seeds),
                                       _seed_mean(daily, reference, seeds))
            line += (f"; seed-averaged daily difference {pooled['diff']:+.4f}, Newey-West se "
                     f"{pooled['se']:.4f}, t {pooled['t']:+.2f} over {pooled['n_days']} days")
        lines.append(line)
    return lines


def read_daily(paths: list[Path]) -> dict[tuple[str, int], pd.Series]:
    """The daily RankIC columns (``variant|seed``) of one or more ``--out`` files."""
    daily: dict[tuple[str, int], pd.Series] = {}
    for path in paths:
        frame = pd.read_csv(path, index_col=0, parse_dates=True)
        for column in frame.columns:
            variant, _, seed = column.rpartition("|")
            if not variant or not seed.isdigit():
                raise SystemExit(f"{path}: column {column!r} is not 'variant|seed'; pass the "
                                 "--out file of a walk_forward_validation.py run")
            daily[variant, int(seed)] = frame[column].dropna()
    return daily


def summarise(paths: list[Path], variants: list[str] | None) -> list[str]:
    """`summary_lines` over the ``--out`` files of several runs (say, seeds fitted in two
    processes), for the seeds every variant has."""
    daily = read_daily(paths)
    variants = variants or list(dict.fromkeys(v for v, _ in daily))
    seeds = sorted(set.intersection(*({s for v, s in daily if v == text} for text in variants)))
    if not seeds:
        raise SystemExit(f"no seed has every variant ({', '.join(variants)}) in "
                         f"{', '.join(map(str, paths))}; pass files of the same variants")
    return summary_lines(daily, variants, seeds)


def validation_split(dates: pd.DatetimeIndex, folds: int, block_days: int, parser,
                     before: pd.Timestamp = TEST_START):
    """The `pretest_split` of the ``folds`` blocks of ``block_days`` before ``before`` (at
    most `TEST_START`; fits from `TRAIN_START`, epochs chosen on the `VALID_DAYS` before
    each block); an impossible one ends in ``parser.error``, one line and exit status 2."""
    from storm_bt.errors import StormBtError
    from storm_bt.experiments.walkforward import pretest_split

    if before > TEST_START:
        parser.error(f"--before {before.date()}: the blocks must end before the test period "
                     f"({TEST_START.date()}); pass an earlier date")
    try:
        return pretest_split(dates, before, folds, block_days, VALID_DAYS, TRAIN_START)
    except StormBtError as exc:
        parser.error(str(exc))


def _seed_mean(daily: dict, variant: str, seeds: list[int]) -> pd.Series:
    """The variant's daily RankIC averaged over seeds (a day counts where every seed has it)."""
    return pd.concat([daily[variant, s] for s in seeds], axis=1).mean(axis=1, skipna=False)


def _se(x: np.ndarray) -> float:
    return float(x.std(ddof=1) / np.sqrt(x.size)) if x.size > 1 else float("nan")


if __name__ == "__main__":
    raise SystemExit(main())
