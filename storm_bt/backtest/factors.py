"""Factor evaluation: every --models x --seeds fitted once, scored by IC on the test period.

For each model and seed the predictor is fitted on the train range (valid range for early
stopping) and predicts the next-day return of every ticker on each test date t from data up
to t. Against the realised next-day returns r_{t+1}:

    IC_t = Pearson(pred_t, r_t+1) across tickers    ICIR = mean_t IC_t / std_t IC_t
    RankIC_t = Spearman(pred_t, r_t+1)              RankICIR = mean_t RankIC_t / std_t RankIC_t
    Q5-Q1 = mean_t (mean return of the top score quintile - that of the bottom one)

ICIR and RankICIR are daily ratios, not annualised (see `storm_bt.evaluation`).

Outputs in --out: factors.csv (model,seed,IC,ICIR,RankIC,RankICIR,Q5_Q1,n_days,fit_seconds),
factors.md (mean and standard deviation over seeds per model), daily_ic.csv (model, seed,
date, IC, RankIC) and config.json.
"""
from __future__ import annotations

import argparse
import logging
import time

import pandas as pd

from storm_bt.backtest import common
from storm_bt.backtest.model_args import add_model_arguments, build_predictor
from storm_bt.dataset import build_feature_set
from storm_bt.errors import StormBtError
from storm_bt.models import REGISTRY

log = logging.getLogger(__name__)

#: Every model, in the order of the paper's factor table.
ALL_MODELS = ["lightgbm", "lstm", "transformer", "factorvae", "storm-ts", "storm-cs", "storm"]
#: Columns of factors.csv that are scores.
SCORES = ["IC", "ICIR", "RankIC", "RankICIR", "Q5_Q1"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    common.add_data_arguments(parser)
    add_model_arguments(parser)
    g = parser.add_argument_group("factors")
    g.add_argument("--models", nargs="+", default=ALL_MODELS, metavar="MODEL",
                   help=f"models to evaluate (default: all of {' '.join(ALL_MODELS)})")
    g.add_argument("--seeds", nargs="+", type=int, metavar="SEED",
                   help="seeds per model (default: --seed alone)")
    g.add_argument("--quantiles", type=int, default=5,
                   help="score quantiles for the top-minus-bottom spread (default 5)")
    common.add_run_arguments(parser)


def evaluate(predictions: pd.DataFrame, realised: pd.DataFrame, n_quantiles: int) -> dict:
    """The scores of one prediction frame (date x ticker) against realised returns."""
    from storm_bt.evaluation import ic_summary, quantile_returns

    realised = realised.reindex(index=predictions.index, columns=predictions.columns)
    scores = ic_summary(predictions, realised)
    spread = quantile_returns(predictions, realised, n_quantiles).spread
    scores["Q5_Q1"] = float(spread.mean()) if len(spread) else float("nan")
    return scores


def summary_table(table: pd.DataFrame) -> pd.DataFrame:
    """Per model: 'mean ± std' of each score over seeds (std with ddof=1; '' for one seed)."""
    rows = {}
    for model, group in table.groupby("model", sort=False):
        row = {}
        for col in SCORES:
            mean, std = group[col].mean(), group[col].std(ddof=1)
            row[col] = f"{mean:.4f}" + (f" ± {std:.4f}" if len(group) > 1 else "")
        row["seeds"] = len(group)
        rows[model] = row
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("model")


def run(args: argparse.Namespace) -> int:
    from reports import atomic_write_csv, atomic_write_json, atomic_write_text, staged_outputs
    from storm_bt.evaluation import daily_ic, daily_rank_ic

    started = time.perf_counter()
    unknown = [m for m in args.models if m not in REGISTRY]
    if unknown:
        raise StormBtError(f"--models: unknown model {unknown[0]!r}; choose from "
                           f"{', '.join(sorted(REGISTRY))}")
    if args.quantiles < 2:
        raise StormBtError(f"--quantiles {args.quantiles}: use at least 2")
    seeds = args.seeds or [args.seed]
    panel, split = common.load_data(args)
    if len(panel.tickers) < args.quantiles:
        raise StormBtError(f"{panel.source}: {len(panel.tickers)} tickers cannot fill "
                           f"{args.quantiles} quantiles; lower --quantiles")
    out = common.run_folder(args, "factors")
    panel = panel.until(split.test_end)  # nothing after the test period is ever read
    test_start, test_end = split.test
    data = build_feature_set(panel)
    realised = pd.DataFrame(data.labels, index=data.dates, columns=list(data.tickers))

    rows, daily, configs = [], [], {}
    for model in args.models:
        for seed in seeds:
            common.seed_everything(seed)
            args.seed = seed
            predictor = build_predictor(args, model)
            log.info("%s seed %d: fitting on %s .. %s", model, seed, *[d.date() for d in split.train])
            t0 = time.perf_counter()
            predictor.fit(data, split)
            predictions = predictor.predict(data, test_start, test_end)
            scores = evaluate(predictions, realised, args.quantiles)
            rows.append({"model": model, "seed": seed, **scores,
                         "fit_seconds": round(time.perf_counter() - t0, 1)})
            configs[model] = predictor.config()
            real = realised.reindex(index=predictions.index, columns=predictions.columns)
            daily.append(pd.DataFrame({"model": model, "seed": seed,
                                       "IC": daily_ic(predictions, real),
                                       "RankIC": daily_rank_ic(predictions, real)}))
            log.info("%s seed %d: IC %.4f ICIR %.4f RankIC %.4f RankICIR %.4f", model, seed,
                     scores["IC"], scores["ICIR"], scores["RankIC"], scores["RankICIR"])

    table = pd.DataFrame(rows)
    summary = summary_table(table)
    daily_frame = pd.concat(daily).rename_axis("date").reset_index()
    daily_frame["date"] = daily_frame["date"].dt.strftime("%Y-%m-%d")
    markdown = (f"Factor evaluation, test period {test_start.date()} .. {test_end.date()}, "
                f"{len(panel.tickers)} tickers, seeds {' '.join(map(str, seeds))} "
                f"(mean ± std over seeds)\n\n{summary.to_markdown()}\n")
    with staged_outputs(out) as stage:  # all files appear together, or none
        atomic_write_csv(table, stage / "factors.csv", index=False)
        atomic_write_csv(daily_frame, stage / "daily_ic.csv", index=False)
        atomic_write_text(stage / "factors.md", markdown)
        atomic_write_json(common.run_record(args, "factors", panel, split, models=configs,
                                            seeds=seeds,
                                            seconds=round(time.perf_counter() - started, 1)),
                          stage / "config.json")
    print(markdown)
    log.info("wrote %s", out)
    return 0
