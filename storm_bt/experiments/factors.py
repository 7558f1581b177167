"""The factor experiment: every model x seed fitted once, scored by IC on the test period.

    run_factors(FactorsConfig) -> FactorsResult

For each model and seed the predictor is fitted on the train range (valid range for early
stopping) and predicts the next-day return of every ticker on each test date t from data up
to t. Against the realised next-day returns r_{t+1}:

    IC_t = Pearson(pred_t, r_t+1) across tickers    ICIR = mean_t IC_t / std_t IC_t
    RankIC_t = Spearman(pred_t, r_t+1)              RankICIR = mean_t RankIC_t / std_t RankIC_t
    Q5-Q1 = mean_t (mean return of the top score quintile - that of the bottom one)

ICIR and RankICIR are daily ratios, not annualised (see `storm_bt.evaluation.ic`).

Whether a model differs from the reference (STORM where it is evaluated): its daily RankIC
minus the reference's on the same days, d_t, with a Newey-West t-statistic
(`storm_bt.evaluation.significance`): per seed (paired with the reference's same seed), and
on the seed-averaged daily series.

Each row also records what the model was chosen on: ``valid_score``, the selection score of
a torch model's training (its best smoothed validation RankIC, `TrainResult`), and
``best_epoch``; NaN for a model without one (LightGBM) and for walk-forward refits (one
score per refit). Paired by seed against the reference, over the seeds both have
(`seed_pairs`):

    Δ_s = score(model, s) − score(reference, s),  mean ± se = mean_s Δ_s ± std_s Δ_s / sqrt(n)

for the validation score (the number a design is chosen on) and the test RankIC, with the
number of seeds on which the model is ahead.

With two or more seeds (and no walk-forward refits) each model's seeds are also averaged into
one seed ensemble, scored on validation and test (`storm_bt.experiments.ensemble`).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import pandas as pd

from storm_bt.errors import StormBtError
from storm_bt.experiments.data import DataConfig
from storm_bt.experiments.walkforward import check_refits
from storm_bt.models.registry import MODEL_NAMES, ModelSettings, model_spec
from storm_bt.runtime import checked_seeds

log = logging.getLogger(__name__)

REFERENCE_MODEL = "storm"


@dataclass(frozen=True)
class FactorsConfig:
    """Models, seeds and data of a factor evaluation.

    Attributes:
        data: prices, tickers and split.
        models: registered model names, evaluated in this order.
        model_settings: preset, epochs, device, threads, checkpoint cache.
        seeds: one fit of every model per seed.
        quantiles: score quantiles for the top-minus-bottom spread.
        refit_every, train_window: walk-forward refits (`storm_bt.experiments.walkforward`).
    """

    data: DataConfig = field(default_factory=DataConfig)
    models: tuple[str, ...] = MODEL_NAMES
    model_settings: ModelSettings = field(default_factory=ModelSettings)
    seeds: tuple[int, ...] = (1337,)
    quantiles: int = 5
    refit_every: int | None = None
    train_window: int | None = None

    def __post_init__(self) -> None:
        check_refits(self.refit_every, self.train_window)
        if not self.models:
            raise StormBtError("--models: give at least one model")
        for name in self.models:
            model_spec(name, flag="--models")
        object.__setattr__(self, "models", tuple(dict.fromkeys(self.models)))
        self.model_settings.check_models(self.models)
        object.__setattr__(self, "seeds", checked_seeds(self.seeds))
        if self.quantiles < 2:
            raise StormBtError(f"--quantiles {self.quantiles}: use at least 2")

    @classmethod
    def from_dict(cls, values: dict) -> "FactorsConfig":
        """The config recorded in a run's config.json (see `storm_bt.experiments.record`)."""
        from storm_bt.experiments.record import config_from_dict

        return config_from_dict(cls, values, ("models", "seeds"))


@dataclass
class FactorsResult:
    """Scores per (model, seed), the daily series behind them and the paired comparisons."""

    config: FactorsConfig
    panel: object
    split: object
    #: model, seed, IC, ICIR, RankIC, RankICIR, n_days, Q5_Q1, valid_score, best_epoch,
    #: and the paired differences to the reference's same seed (RankIC_vs_ref, t_vs_ref,
    #: valid_vs_ref)
    table: pd.DataFrame
    #: date, model, seed, IC, RankIC
    daily: pd.DataFrame
    #: per model: the seed-averaged daily RankIC minus the reference's, its NW se and t
    comparison: pd.DataFrame
    model_configs: dict
    #: "model/seed" -> seconds to fit and predict
    task_seconds: dict
    seconds: float
    #: model -> the first seed's test predictions (date x ticker), for the factor tear sheets
    predictions: dict = field(default_factory=dict)
    #: model -> the first seed's codebook usage (STORM models)
    code_usage: dict = field(default_factory=dict)
    #: date x ticker realised next-day returns on the test period
    realised: pd.DataFrame | None = None
    #: per model with >= 2 seeds, its seed ensemble's scores (`storm_bt.experiments.ensemble`)
    ensembles: pd.DataFrame | None = None
    #: date, model, IC, RankIC of each seed ensemble on the test period
    ensemble_daily: pd.DataFrame | None = None


def compare_to_reference(daily: pd.DataFrame, reference: str = REFERENCE_MODEL) -> pd.DataFrame:
    """Per model, its seed-averaged daily RankIC minus the reference's (Newey-West t)."""
    from storm_bt.evaluation.significance import paired_difference

    columns = ["model", "vs", "RankIC_diff", "se_NW", "t_NW", "n_days"]
    if reference not in set(daily["model"]):
        return pd.DataFrame(columns=columns)
    mean_daily = daily.groupby(["model", "date"], sort=False)["RankIC"].mean()
    ref = mean_daily.loc[reference]
    rows = []
    for model in dict.fromkeys(daily["model"]):
        if model == reference:
            continue
        d = paired_difference(mean_daily.loc[model], ref)
        rows.append({"model": model, "vs": reference, "RankIC_diff": d["diff"], "se_NW": d["se"],
                     "t_NW": d["t"], "n_days": d["n_days"]})
    return pd.DataFrame(rows, columns=columns)


def pair_by_seed(table: pd.DataFrame, daily: pd.DataFrame,
                 reference: str = REFERENCE_MODEL) -> pd.DataFrame:
    """``table`` with RankIC_vs_ref and t_vs_ref: each (model, seed)'s daily RankIC minus the
    reference's same seed on the same days, d_t, as mean_t d_t and its Newey-West t; and,
    where the table has ``valid_score``, valid_vs_ref: its validation score minus the
    reference's same seed. NaN for the reference itself and where the reference lacks that
    seed (or a validation score)."""
    from storm_bt.evaluation.significance import paired_difference

    series = {key: group.set_index("date")["RankIC"]
              for key, group in daily.groupby(["model", "seed"], sort=False)}
    diffs, ts = [], []
    for model, seed in zip(table["model"], table["seed"]):
        ref = series.get((reference, seed))
        if model == reference or ref is None:
            diffs.append(float("nan")), ts.append(float("nan"))
            continue
        d = paired_difference(series[(model, seed)], ref)
        diffs.append(d["diff"]), ts.append(d["t"])
    out = table.assign(RankIC_vs_ref=diffs, t_vs_ref=ts)
    if "valid_score" in table:
        ref_valid = table[table["model"] == reference].set_index("seed")["valid_score"]
        own = table["valid_score"].astype(float)
        paired = table["seed"].map(ref_valid).astype(float)
        out["valid_vs_ref"] = (own - paired).where(table["model"] != reference)
    return out


def seed_pairs(table: pd.DataFrame, reference: str = REFERENCE_MODEL) -> pd.DataFrame:
    """Per model, its scores minus the reference's, paired by seed over the seeds both have:
    mean ± standard error over those seeds of the validation score difference and of the
    test RankIC difference, and on how many of them the model is ahead (see the module
    docstring). One row per model other than the reference; empty without it."""
    import numpy as np

    columns = ["model", "vs", "seeds", "valid_diff", "valid_se", "valid_ahead", "RankIC_diff",
               "RankIC_se", "RankIC_ahead"]
    if reference not in set(table["model"]):
        return pd.DataFrame(columns=columns)
    ref = table[table["model"] == reference].set_index("seed")
    rows = []
    for model, group in table[table["model"] != reference].groupby("model", sort=False):
        group = group[group["seed"].isin(ref.index)].set_index("seed")
        row = {"model": model, "vs": reference, "seeds": " ".join(map(str, group.index))}
        for score, name in (("valid_score", "valid"), ("RankIC", "RankIC")):
            if score in group and score in ref:
                d = (group[score].astype(float) - ref.loc[group.index, score].astype(float))
                d = d[np.isfinite(d)].to_numpy()
            else:
                d = np.array([])
            row[f"{name}_diff"] = float(d.mean()) if d.size else float("nan")
            row[f"{name}_se"] = float(d.std(ddof=1) / np.sqrt(d.size)) if d.size > 1 \
                else float("nan")
            row[f"{name}_ahead"] = f"{int((d > 0).sum())} of {d.size}" if d.size else ""
        rows.append(row)
    return pd.DataFrame(rows, columns=columns)


def selection_scores(predictor) -> dict:
    """What a fitted predictor was chosen on: its best smoothed validation RankIC
    (``valid_score``) and that epoch (``best_epoch``); NaN without a training log."""
    train_log = getattr(predictor, "train_result", None) or {}
    score, epoch = train_log.get("best_smoothed_rank_ic"), train_log.get("best_epoch")
    return {"valid_score": float("nan") if score is None else float(score),
            "best_epoch": float("nan") if epoch is None else float(epoch)}


@dataclass(frozen=True)
class FactorTask:
    """One cell of the factor grid: fit ``model`` with ``seed`` and score its test predictions."""

    data: DataConfig
    model: str
    seed: int
    model_settings: ModelSettings
    quantiles: int
    refit_every: int | None = None
    train_window: int | None = None
    #: also predict the validation range (for the seed ensembles' validation score)
    predict_valid: bool = False


@dataclass
class FactorTaskResult:
    row: dict
    daily: pd.DataFrame
    model_config: dict
    #: fitting and predicting time (kept out of the scores, which must not depend on it)
    seconds: float
    #: date x ticker test predictions
    predictions: pd.DataFrame | None = None
    #: STORM's codebook usage on the test period: branch -> code counts
    code_usage: dict | None = None
    #: date x ticker predictions on the validation range (FactorTask.predict_valid)
    valid_predictions: pd.DataFrame | None = None


#: Features per data config, computed once per process (a grid worker runs many tasks).
_PREPARED: dict = {}


def _prepared(data_config: DataConfig):
    """(panel, split, feature set, realised returns, membership) of ``data_config``, cached
    per process; realised returns and labels are NaN off the membership."""
    from storm_bt.experiments.data import (load_experiment_data, membership_frame,
                                           restrict_to_members)
    from storm_bt.features.dataset import build_feature_set

    if data_config not in _PREPARED:
        _PREPARED.clear()  # one data set at a time: a feature set can take gigabytes
        panel, split = load_experiment_data(data_config)
        member = membership_frame(data_config, panel)
        data = restrict_to_members(build_feature_set(panel), member)
        realised = pd.DataFrame(data.labels, index=data.dates, columns=list(data.tickers))
        _PREPARED[data_config] = (panel, split, data, realised, member)
    return _PREPARED[data_config]


def run_factor_task(task: FactorTask) -> FactorTaskResult:
    """Fit, predict and score one (model, seed): a pure function of its picklable task."""
    from storm_bt.evaluation import score_predictions
    from storm_bt.experiments.fitting import fit_model

    from storm_bt.experiments.data import members_only

    panel, split, data, realised, member = _prepared(task.data)
    test_start, test_end = split.test
    t0 = time.perf_counter()
    if task.refit_every:
        from storm_bt.experiments.walkforward import walk_forward

        fitted = walk_forward(task.model, task.seed, task.model_settings, data, split,
                              task.refit_every, task.train_window)
        predictions, model_config = fitted.predictions, fitted.model_config
        selection = selection_scores(None)
    else:
        fitted = fit_model(task.model, task.seed, task.model_settings, data, split)
        predictions = fitted.predictor.predict(data, test_start, test_end)
        model_config = fitted.predictor.config()
        selection = selection_scores(fitted.predictor)
    valid_predictions = None
    if task.predict_valid and not task.refit_every:
        valid_predictions = members_only(fitted.predictor.predict(data, *split.valid), member)
    predictions = members_only(predictions, member)
    scores, daily = score_predictions(predictions, realised, task.quantiles)
    row = {"model": task.model, "seed": task.seed, **scores, **selection}
    daily = daily.assign(model=task.model, seed=task.seed)[["model", "seed", "IC", "RankIC"]]
    log.info("%s seed %d: IC %.4f ICIR %.4f RankIC %.4f RankICIR %.4f", task.model, task.seed,
             scores["IC"], scores["ICIR"], scores["RankIC"], scores["RankICIR"])
    usage = None
    if hasattr(getattr(fitted, "predictor", None), "factors"):
        usage = code_usage(fitted.predictor.factors(data, test_start, test_end))
    return FactorTaskResult(row, daily, model_config, time.perf_counter() - t0, predictions,
                            usage, valid_predictions)


def code_usage(factors: dict) -> dict:
    """branch -> how often each code was chosen, from `StormPredictor.factors` output (code
    -1, a stock not listed yet, is no choice)."""
    import numpy as np

    def counts(codes) -> np.ndarray:
        codes = np.asarray(codes).ravel().astype(int)
        return np.bincount(codes[codes >= 0])

    return {key.replace("codes_", "").upper(): counts(value)
            for key, value in factors.items() if key.startswith("codes_") and value is not None}


def factor_tasks(config: FactorsConfig) -> list:
    """The grid of a factor evaluation: one task per (model, seed), models outermost."""
    from storm_bt.experiments.grid import Task

    ensembles = len(config.seeds) >= 2 and not config.refit_every
    return [Task(f"{model} seed {seed}", run_factor_task,
                 FactorTask(config.data, model, seed, config.model_settings, config.quantiles,
                            config.refit_every, config.train_window,
                            predict_valid=ensembles))
            for model in config.models for seed in config.seeds]


def run_factors(config: FactorsConfig, grid=None) -> FactorsResult:
    """Fit and score every model for every seed (see the module docstring).

    ``grid`` (`storm_bt.experiments.grid.GridSettings`) runs the (model, seed) tasks on
    several processes or a Ray cluster; the result is the same as a serial run's.
    """
    from storm_bt.experiments.grid import GridSettings, run_grid

    started = time.perf_counter()
    panel, split, _, realised, _ = _prepared(config.data)
    if len(panel.tickers) < config.quantiles:
        raise StormBtError(f"{panel.source}: {len(panel.tickers)} tickers cannot fill "
                           f"{config.quantiles} quantiles; lower --quantiles")
    grid = grid or GridSettings()
    if grid.jobs > 1 or grid.backend != "local":
        _PREPARED.clear()  # the workers prepare their own copy
    try:
        outcomes = run_grid(factor_tasks(config), grid, desc="factors")
    finally:
        _PREPARED.clear()
    configs = {o.row["model"]: o.model_config for o in outcomes}
    daily_frame = pd.concat([o.daily for o in outcomes]).rename_axis("date").reset_index()
    table = pd.DataFrame([o.row for o in outcomes])
    table["best_epoch"] = table["best_epoch"].astype("Int64")
    table = pair_by_seed(table, daily_frame)
    ensembles, ensemble_daily = _ensembles(outcomes, realised, config.quantiles)
    return FactorsResult(config=config, panel=panel, split=split, table=table,
                         daily=daily_frame, comparison=compare_to_reference(daily_frame),
                         model_configs=configs,
                         task_seconds={f"{o.row['model']}/{o.row['seed']}": round(o.seconds, 1)
                                       for o in outcomes},
                         seconds=time.perf_counter() - started,
                         predictions={o.row["model"]: o.predictions for o in outcomes
                                      if o.row["seed"] == config.seeds[0]},
                         code_usage={o.row["model"]: o.code_usage for o in outcomes
                                     if o.row["seed"] == config.seeds[0] and o.code_usage},
                         realised=realised.loc[split.test_start:split.test_end],
                         ensembles=ensembles, ensemble_daily=ensemble_daily)


def _ensembles(outcomes: list, realised: pd.DataFrame, n_quantiles: int):
    """`storm_bt.experiments.ensemble.ensemble_table` of the grid's outcomes: (None, None)
    when no model has validation predictions for two or more seeds."""
    from storm_bt.experiments.ensemble import ensemble_table

    test, valid = {}, {}
    for o in outcomes:
        if o.valid_predictions is None:
            continue
        test.setdefault(o.row["model"], {})[o.row["seed"]] = o.predictions
        valid.setdefault(o.row["model"], {})[o.row["seed"]] = o.valid_predictions
    if not any(len(by_seed) >= 2 for by_seed in test.values()):
        return None, None
    return ensemble_table(test, valid, realised, n_quantiles, REFERENCE_MODEL)
