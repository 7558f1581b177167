"""Factor evaluation: every --models x --seeds fitted once, scored by IC on the test period.

The flags become a `storm_bt.experiments.FactorsConfig`; `run_factors` does the work (see
`storm_bt.experiments.factors` for the maths); this module writes the files.

Outputs in --out: factors.csv (model, seed, IC, ICIR, RankIC, RankICIR, n_days, Q5_Q1,
valid_score, best_epoch, RankIC_vs_ref, t_vs_ref, valid_vs_ref), factors.md (mean ± standard
error over seeds per model, the validation score and test RankIC minus STORM's paired by
seed, and each model's daily RankIC difference to STORM with a Newey-West t-statistic),
daily_ic.csv (date, model, seed, IC, RankIC), config.json; with two or more seeds,
ensembles.csv (each model's seed ensemble: validation RankIC against its members' mean, the
test scores, and the daily RankIC difference to STORM's ensemble with a Newey-West t) and
ensemble_daily_ic.csv (date, model, IC, RankIC); and the factor tear sheets:
factor_sheets.html linking, per model (its first seed), the daily IC / RankIC with a rolling
mean, the IC histogram, mean and cumulative return by score quantile, the rank
autocorrelation (turnover) and, for STORM, codebook usage (pictures in factor_sheets/).
"""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import pandas as pd

from storm_bt.backtest import common
from storm_bt.errors import StormBtError
from storm_bt.experiments.factors import FactorsConfig, FactorsResult
from storm_bt.models.registry import MODEL_NAMES

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    common.add_data_arguments(parser)
    common.add_model_arguments(parser, single_model=False)
    g = parser.add_argument_group("factors")
    g.add_argument("--models", nargs="+", default=list(MODEL_NAMES), choices=MODEL_NAMES,
                   metavar="MODEL",
                   help=f"models to evaluate (default: all of {' '.join(MODEL_NAMES)})")
    g.add_argument("--quantiles", type=int, default=5,
                   help="score quantiles for the top-minus-bottom spread (default 5)")
    common.add_refit_arguments(parser)
    common.add_grid_arguments(parser)
    common.add_run_arguments(parser, seeds=True)


def config_from_args(args: argparse.Namespace) -> FactorsConfig:
    if args.config:
        return common.config_from_file(FactorsConfig, args.config, "factors")
    return FactorsConfig(data=common.data_config(args), models=tuple(args.models),
                         model_settings=common.model_settings(args), seeds=common.seeds(args),
                         quantiles=args.quantiles, refit_every=args.refit_every,
                         train_window=args.train_window)


def markdown(result: FactorsResult) -> str:
    """The printed report: the score table and the paired comparison with STORM."""
    test_start, test_end = result.split.test
    seeds = " ".join(map(str, result.config.seeds))
    overrides = result.config.model_settings.overrides
    changed = f", settings changed: {' '.join(overrides)}" if overrides else ""
    return report(result.table, result.comparison,
                  f"Factor evaluation, test period {test_start.date()} .. {test_end.date()}, "
                  f"{len(result.panel.tickers)} tickers, seeds {seeds}{changed}",
                  result.ensembles)


def report(table: pd.DataFrame, comparison: pd.DataFrame, title: str,
           ensembles: pd.DataFrame | None = None) -> str:
    """``title``, the mean ± standard error of each score over seeds, the validation score
    and test RankIC minus STORM's paired by seed (`storm_bt.experiments.factors.seed_pairs`),
    the seed-averaged daily comparison with STORM
    (`storm_bt.experiments.factors.compare_to_reference`) and, where given, the seed
    ensembles (`storm_bt.experiments.ensemble`)."""
    from reports.tables import factor_summary, markdown as to_markdown, seed_pair_table
    from storm_bt.experiments.factors import seed_pairs

    text = (f"{title} (mean ± standard error over seeds; ICIR and RankICIR: the daily mean "
            f"over the daily standard deviation, not annualised (× √252 annualises them); "
            f"Q5_Q1: the top score quantile's mean next-day return minus the bottom one's "
            f"(--quantiles), basis points a day; valid_score: the validation RankIC each fit "
            f"was selected on, the best of its epochs)\n\n"
            f"{to_markdown(factor_summary(table, spread='se'))}\n")
    pairs = seed_pairs(table)
    if len(pairs):
        text += (f"\nMinus STORM's, paired by seed (mean ± standard error over the seeds both "
                 f"have; 'ahead': seeds on which the model beats STORM)\n\n"
                 f"{to_markdown(seed_pair_table(pairs))}\n")
    if len(comparison):
        comp = comparison.set_index("model")
        comp = comp.assign(RankIC_diff=comp["RankIC_diff"].map("{:+.4f}".format),
                           se_NW=comp["se_NW"].map("{:.4f}".format),
                           t_NW=comp["t_NW"].map("{:+.2f}".format))
        text += (f"\nDaily RankIC minus STORM's (seed-averaged, same days), Newey-West standard "
                 f"error and t-statistic (|t| > 2: a difference at about the 5% level)\n\n"
                 f"{to_markdown(comp)}\n")
    if ensembles is not None and len(ensembles):
        from reports.tables import ensemble_display

        text += (f"\nSeed ensembles: each day's z-scored predictions averaged over the seeds. "
                 f"valid: the ensemble's validation RankIC against its members' mean (± se), "
                 f"same restored fits and days; vs STORM: the ensemble's daily test RankIC "
                 f"minus STORM's ensemble's, Newey-West t\n\n"
                 f"{to_markdown(ensemble_display(ensembles))}\n")
    return text


#: What two factor runs must share for their rows to be merged into one table: the same
#: prices (the panel's fingerprint, tickers, fields and dates, not the path it was read
#: from), split and universe, and the same training recipe. Seeds, models, threads, the
#: cache and the grid may differ.
SHARED_SETTINGS = ("data.fingerprint", "data.tickers", "data.fields", "data.first_date",
                   "data.last_date", "data.n_dates", "split.train_start", "split.valid_start",
                   "split.test_start", "split.test_end", "config.data.membership",
                   "config.model_settings.preset", "config.model_settings.epochs",
                   "config.model_settings.overrides",
                   "config.quantiles", "config.refit_every", "config.train_window")


def merge_runs(folders: list[Path]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(table, daily, comparison) of several `factors` output folders as one evaluation:
    runs split by seed or by model (to share cores, machines or cached checkpoints) give the
    table one run of every (model, seed) would have given, the per-seed and seed-averaged
    pairings with STORM recomputed over all of them.

    Refuses (StormBtError) a folder without its files, runs whose data, split or training
    recipe differ (`SHARED_SETTINGS`), and a (model, seed) found twice. The same file named
    by two paths is the same data: the prices are compared by their fingerprint.
    """
    from storm_bt.experiments.factors import compare_to_reference, pair_by_seed
    from storm_bt.trees import differences, lookup, short

    tables, dailies, first = [], [], None
    for folder in map(Path, folders):
        for name in ("factors.csv", "daily_ic.csv", "config.json"):
            if not (folder / name).is_file():
                raise StormBtError(f"{folder / name}: missing; pass folders written by "
                                   f"'python -m storm_bt.backtest factors --out DIR'")
        record = json.loads((folder / "config.json").read_text())
        settings = record.get("config", {}).get("model_settings")
        if isinstance(settings, dict):           # runs recorded before --set had none
            settings.setdefault("overrides", [])
        if first is None:
            first = (folder, record)
        differ = [key for key in SHARED_SETTINGS
                  if differences(lookup(record, key), lookup(first[1], key))]
        if differ:
            key = differ[0]
            raise StormBtError(f"{folder / 'config.json'}: {key} differs from "
                               f"{first[0] / 'config.json'} ({short(lookup(record, key))} "
                               f"against {short(lookup(first[1], key))}); merge only runs of "
                               f"the same data, split and training settings")
        tables.append(pd.read_csv(folder / "factors.csv"))
        dailies.append(pd.read_csv(folder / "daily_ic.csv", parse_dates=["date"]))
    table = pd.concat(tables, ignore_index=True)
    twice = table[table.duplicated(["model", "seed"])]
    if len(twice):
        raise StormBtError(f"{twice['model'].iloc[0]} seed {twice['seed'].iloc[0]} is in more "
                           f"than one run; merge each (model, seed) once")
    daily = pd.concat(dailies, ignore_index=True)
    table = pair_by_seed(table.drop(columns=["RankIC_vs_ref", "t_vs_ref", "valid_vs_ref"],
                                    errors="ignore"), daily)
    return table, daily, compare_to_reference(daily)


def write_outputs(result: FactorsResult, out: Path) -> str:
    from reports import atomic_write_csv, atomic_write_json, atomic_write_text, staged_outputs
    from reports.factor_sheet import write_factor_index, write_factor_sheet
    from storm_bt.experiments.record import run_record

    text = markdown(result)
    daily = result.daily.copy()
    daily["date"] = daily["date"].dt.strftime("%Y-%m-%d")
    with staged_outputs(out) as stage:  # all files appear together, or none
        atomic_write_csv(result.table, stage / "factors.csv", index=False)
        atomic_write_csv(daily, stage / "daily_ic.csv", index=False)
        atomic_write_text(stage / "factors.md", text)
        if result.ensembles is not None:
            ens_daily = result.ensemble_daily.copy()
            ens_daily["date"] = ens_daily["date"].dt.strftime("%Y-%m-%d")
            atomic_write_csv(result.ensembles, stage / "ensembles.csv", index=False)
            atomic_write_csv(ens_daily, stage / "ensemble_daily_ic.csv", index=False)
        sheets = [write_factor_sheet(stage, model, predictions,
                                     result.realised.reindex(index=predictions.index,
                                                             columns=predictions.columns),
                                     code_usage=result.code_usage.get(model),
                                     n_quantiles=result.config.quantiles)
                  for model, predictions in result.predictions.items()]
        write_factor_index(stage, sheets)
        atomic_write_json(run_record("factors", result.config, result.panel, result.split,
                                     models=result.model_configs,
                                     task_seconds=result.task_seconds,
                                     seconds=round(result.seconds, 1)),
                          stage / "config.json")
    return text


def run(args: argparse.Namespace) -> int:
    from storm_bt.experiments.factors import run_factors

    config = config_from_args(args)
    out = common.run_folder(args, "factors")
    common.check_cache_dir(args)
    result = run_factors(config, common.grid_settings(args))
    if not common.writes_outputs():
        return 0
    text = write_outputs(result, out)
    print(text)
    from reports.factor_sheet import INDEX_NAME

    log.info("wrote %s; open %s", out, out / INDEX_NAME)
    return 0
