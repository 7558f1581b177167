"""The portfolio experiment: predict next-day returns, turn them into weights, trade them.

    run_portfolio(PortfolioConfig) -> PortfolioResult

Steps (each uses only data up to its decision date):
  1. load prices, cut them at the test end, compute causal features and next-day labels;
  2. fit the model on the train range (valid range for early stopping), predict the test range
     (with ``ensemble``: one fit per seed, each day's z-scored predictions averaged over them,
     `storm_bt.experiments.ensemble`);
  3. every ``rebalance`` days, the optimizer turns the predictions of that day and a
     Ledoit-Wolf covariance of the trailing returns into target weights;
  4. backtrader executes the targets on the next bar's open with ``cost_bps`` commission;
  5. the daily returns are scored against the benchmark (`reports.performance_metrics`)
     and the predictions against realised returns (`storm_bt.evaluation.ic_summary`).

Every setting is validated when the config is built, before any data is read; the settings
that depend on the universe (a long-only book needs ``max_weight x n >= 1``; ``topk <= n``)
are checked right after loading, before any model is fitted.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import NamedTuple

import pandas as pd

from storm_bt.errors import StormBtError
from storm_bt.experiments.data import DataConfig
from storm_bt.experiments.walkforward import check_refits
from storm_bt.models.registry import DEFAULT_MODEL, ModelSettings, model_spec
from storm_bt.runtime import checked_seeds
from storm_bt.units import bps_to_fraction

log = logging.getLogger(__name__)

OPTIMIZERS = ("mean-variance", "topk")
SOLVERS = ("auto", "newton", "cvxpy")
EQUAL_WEIGHT = "equal-weight"
#: The default cap on one stock's weight; raised for small universes (see `PortfolioConfig`).
DEFAULT_MAX_WEIGHT = 0.1


def _finite(value: float, flag: str, low: float | None = None, strict: bool = False) -> None:
    ok = isinstance(value, (int, float)) and math.isfinite(value)
    if ok and low is not None:
        ok = value > low if strict else value >= low
    if not ok:
        bound = "" if low is None else (f" > {low:g}" if strict else f" >= {low:g}")
        raise StormBtError(f"{flag} {value}: use a finite number{bound}")


#: settings only the mean-variance optimiser reads, and only the top-k one
MEAN_VARIANCE_ONLY = ("risk_aversion", "turnover_penalty", "long_short", "gross_limit",
                      "max_weight", "horizon", "risk_factors", "solver")
TOPK_ONLY = ("topk", "n_drop")


@dataclass(frozen=True)
class PortfolioConfig:
    """Everything a portfolio run depends on.

    Attributes:
        data: prices, tickers and split (`DataConfig`).
        model: a registered model name (`storm_bt.models.MODEL_NAMES`).
        model_settings: preset, epochs, device, threads, checkpoint cache.
        seed: the seed of every random number.
        optimizer: 'mean-variance' (cvxpy, Ledoit-Wolf) or 'topk' (equal weight, dropout).
        rebalance: trading days between rebalances.
        cost_bps: commission in basis points of traded value.
        max_weight: cap on one stock's weight; None: 0.1, raised to 2/n (at most 1) where
            0.1 x n < 2, so that a small universe still has room to choose.
        risk_aversion: gamma in mu'w - gamma w'Sigma w - kappa |w - w_prev|_1.
        turnover_penalty: kappa (None: the cost rate, cost_bps / 1e4).
        long_short: allow shorts (dollar neutral, sum |w| <= gross_limit).
        gross_limit: the gross exposure limit of a long-short book.
        lookback: trailing days of returns for the covariance.
        topk, n_drop: the top-k optimizer's book size and most names replaced per rebalance.
        cash: initial cash.
        benchmark: 'equal-weight' (the universe) or 'PATH:TICKER' of a long price file.
        horizon: h, the days a book is held, to which the optimiser scales mu and Sigma
            (mu'w h - gamma h w'Sigma w - kappa |dw|_1; None: the rebalance spacing, 1: the
            one-day model that ignores how long a position is held).
        risk_factors: K statistical factors for the risk model where N > T (None: exact).
        solver: 'auto' (dual Newton above 100 names, cvxpy below), 'newton' or 'cvxpy'.
        refit_every: refit the model every N test days (walk-forward; None: fit once).
        train_window: with refits, train on the last N trading days before each refit's
            validation block (rolling; None: an expanding window from the train start).
        ensemble: fit the model once per seed in this tuple (at least two) and trade one book
            on their seed ensemble; ``seed`` is then unused. Empty: one fit with ``seed``.
    """

    data: DataConfig = field(default_factory=DataConfig)
    model: str = DEFAULT_MODEL
    model_settings: ModelSettings = field(default_factory=ModelSettings)
    seed: int = 1337
    optimizer: str = "mean-variance"
    rebalance: int = 5
    cost_bps: float = 10.0
    max_weight: float | None = None
    risk_aversion: float = 5.0
    turnover_penalty: float | None = None
    long_short: bool = False
    gross_limit: float = 2.0
    lookback: int = 252
    topk: int = 5
    n_drop: int = 3
    cash: float = 1_000_000.0
    benchmark: str = EQUAL_WEIGHT
    horizon: float | None = None
    risk_factors: int | None = None
    solver: str = "auto"
    refit_every: int | None = None
    train_window: int | None = None
    ensemble: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        model_spec(self.model)
        self.model_settings.check_models([self.model])
        check_refits(self.refit_every, self.train_window)
        checked_seeds([self.seed], "--seed")
        if self.ensemble:
            object.__setattr__(self, "ensemble", checked_seeds(self.ensemble, "--ensemble"))
        if len(self.ensemble) == 1:
            raise StormBtError(f"--ensemble {self.ensemble[0]}: an ensemble needs at least two "
                               f"seeds (for one fit use --seed)")
        if self.optimizer not in OPTIMIZERS:
            raise StormBtError(f"--optimizer {self.optimizer!r}: choose one of {', '.join(OPTIMIZERS)}")
        self._check_optimizer_reads_its_settings()
        if self.rebalance < 1:
            raise StormBtError(f"--rebalance {self.rebalance}: must be at least 1 day")
        bps_to_fraction(self.cost_bps)
        if self.max_weight is not None and not (math.isfinite(self.max_weight)
                                                and 0 < self.max_weight <= 1):
            raise StormBtError(f"--max-weight {self.max_weight}: must be in (0, 1]")
        _finite(self.risk_aversion, "--risk-aversion", 0.0)
        if self.turnover_penalty is not None:
            _finite(self.turnover_penalty, "--turnover-penalty", 0.0)
        _finite(self.gross_limit, "--gross-limit", 0.0, strict=True)
        if self.lookback < 20:
            raise StormBtError(f"--lookback {self.lookback}: use at least 20 days")
        if self.topk < 1:
            raise StormBtError(f"--topk {self.topk}: hold at least 1 name")
        if not 0 <= self.n_drop <= self.topk:
            raise StormBtError(f"--n-drop {self.n_drop}: must be between 0 and --topk {self.topk}")
        _finite(self.cash, "--cash", 0.0, strict=True)
        if self.horizon is not None:
            _finite(self.horizon, "--horizon", 1.0)
        if self.risk_factors is not None and self.risk_factors < 1:
            raise StormBtError(f"--risk-factors {self.risk_factors}: use at least 1 factor")
        if self.solver not in SOLVERS:
            raise StormBtError(f"--solver {self.solver!r}: choose one of {', '.join(SOLVERS)}")
        if self.benchmark != EQUAL_WEIGHT:
            path = self.benchmark if Path(self.benchmark).exists() else self.benchmark.partition(":")[0]
            if not Path(path).is_file():
                raise StormBtError(f"--benchmark {self.benchmark}: no such file {path}; give "
                                   f"'{EQUAL_WEIGHT}' or PATH:TICKER")

    def _check_optimizer_reads_its_settings(self) -> None:
        """Refuse a setting, changed from its default, that the chosen optimiser never
        reads: it would be recorded in config.json and ignored."""
        defaults = {f.name: f.default for f in fields(self)}
        changed = [name for name in (TOPK_ONLY if self.optimizer == "mean-variance"
                                     else MEAN_VARIANCE_ONLY)
                   if getattr(self, name) != defaults[name]]
        if changed:
            flag = "--" + changed[0].replace("_", "-")
            other = "topk" if self.optimizer == "mean-variance" else "mean-variance"
            raise StormBtError(f"{flag}: the {self.optimizer} optimizer does not use it; drop "
                               f"it or pass --optimizer {other}")
        if not self.long_short and self.gross_limit != defaults["gross_limit"]:
            raise StormBtError(f"--gross-limit {self.gross_limit}: it limits a long-short "
                               "book; add --long-short or drop it (a long-only book is fully "
                               "invested)")

    @property
    def cost(self) -> float:
        """The commission as a fraction of traded value."""
        return bps_to_fraction(self.cost_bps)

    @property
    def kappa(self) -> float:
        """The turnover penalty: the given one, else the cost rate."""
        return self.cost if self.turnover_penalty is None else float(self.turnover_penalty)

    def weight_cap(self, n_assets: int) -> float:
        """The cap on one stock's weight for a universe of ``n_assets`` (see ``max_weight``)."""
        if self.max_weight is not None:
            return float(self.max_weight)
        return min(1.0, max(DEFAULT_MAX_WEIGHT, 2.0 / n_assets))

    def check_universe(self, n_assets: int) -> None:
        """The settings that depend on the number of tickers; a user error if they cannot work."""
        cap = self.weight_cap(n_assets)
        if not self.long_short and self.optimizer == "mean-variance" and cap * n_assets < 1:
            raise StormBtError(
                f"--max-weight {cap} x {n_assets} tickers < 1: a fully invested long-only "
                f"book is impossible; use --max-weight {1 / n_assets:.3g} or more")
        if self.optimizer == "topk" and self.topk > n_assets:
            raise StormBtError(f"--topk {self.topk}: must be between 1 and the {n_assets} tickers")

    @classmethod
    def from_dict(cls, values: dict) -> "PortfolioConfig":
        """The config recorded in a run's config.json (see `storm_bt.experiments.record`)."""
        from storm_bt.experiments.record import config_from_dict

        return config_from_dict(cls, values, ("ensemble",))


@dataclass
class PortfolioResult:
    """What a portfolio run produced (all frames are indexed by date)."""

    config: PortfolioConfig
    panel: object
    split: object
    model_name: str
    model_config: dict
    #: date x ticker predicted next-day returns on the test range
    predictions: pd.DataFrame
    #: date x ticker target weights at each rebalance date
    weights: pd.DataFrame
    #: daily portfolio value and return from backtrader
    equity: pd.Series
    returns: pd.Series
    benchmark: pd.Series
    metrics: dict
    max_weight: float
    fit_seconds: float
    seconds: float
    #: the split of every walk-forward refit (one element, the split, without refits)
    refits: list = field(default_factory=list)
    #: seconds per step: features, fit_predict, optimizer, backtest
    timings: dict = field(default_factory=dict)


def run_portfolio(config: PortfolioConfig) -> PortfolioResult:
    """Fit, predict, optimise and backtest as ``config`` says (see the module docstring)."""
    from reports import performance_metrics
    from storm_bt.data.benchmark import load_benchmark
    from storm_bt.evaluation import ic_summary
    from storm_bt.experiments.data import (load_experiment_data, members_only, membership_frame,
                                           restrict_to_members)
    from storm_bt.features.dataset import build_feature_set

    started = time.perf_counter()
    panel, split = load_experiment_data(config.data)
    n_assets = len(panel.tickers)
    config.check_universe(n_assets)
    cap = config.weight_cap(n_assets)
    if config.max_weight is None and cap != DEFAULT_MAX_WEIGHT:
        log.info("max weight %.3g (2 / %d tickers): the default %.2g leaves no room to choose",
                 cap, n_assets, DEFAULT_MAX_WEIGHT)
    test_start, test_end = split.test

    benchmark = load_benchmark(config.benchmark, panel)
    bench_test = benchmark.loc[test_start:test_end].iloc[1:]
    if bench_test.isna().any():
        gap = bench_test.index[bench_test.isna()][0]
        raise StormBtError(f"--benchmark {config.benchmark} has no price on {gap.date()} inside "
                           "the test period; choose another benchmark or test period")

    member = membership_frame(config.data, panel)

    # cvxpy and backtrader (about 1.5 s of imports) only once the input has passed its checks
    from optimizers import make_optimizer, rebalance_weights
    from optimizers.book import book_change_summary
    from strategies import run_portfolio_backtest

    timings = {}
    clock = time.perf_counter()
    log.info("features for %d tickers x %d days", n_assets, len(panel.dates))
    data = restrict_to_members(build_feature_set(panel), member)
    timings["features"] = time.perf_counter() - clock
    clock = time.perf_counter()
    fits = [_fit_predict(config, seed, data, split) for seed in config.ensemble or (config.seed,)]
    predictions, refits, model_name, model_config, fit_seconds = fits[0]
    if config.ensemble:
        from storm_bt.experiments.ensemble import seed_ensemble

        predictions = seed_ensemble([f.predictions for f in fits])
        seeds = " ".join(map(str, config.ensemble))
        model_name = f"{model_name} ensemble ({seeds})"
        model_config = {"ensemble_seeds": list(config.ensemble), **model_config}
        fit_seconds = sum(f.fit_seconds for f in fits)
        log.info("%s: each day's z-scored predictions averaged over %d seeds", model_name,
                 len(fits))
    predictions = members_only(predictions, member)
    if predictions.empty:
        raise StormBtError(f"no test dates between {test_start.date()} and {test_end.date()}")

    timings["fit_predict"] = time.perf_counter() - clock
    clock = time.perf_counter()
    # Weights decided on the last test day would never trade: stop one day before.
    decision_dates = predictions.index[:-1:config.rebalance]
    optimizer = make_optimizer(
        config.optimizer, n_assets=n_assets, risk_aversion=config.risk_aversion,
        max_weight=cap, turnover_penalty=config.kappa, long_short=config.long_short,
        gross_limit=config.gross_limit, k=config.topk, n_drop=config.n_drop,
        solver=config.solver)
    weights = rebalance_weights(predictions, panel.returns(), decision_dates, optimizer,
                                lookback=config.lookback, horizon=config.horizon,
                                risk_factors=config.risk_factors)
    timings["optimizer"] = time.perf_counter() - clock
    book = book_change_summary(weights)
    if book["frozen"]:
        last = f"last on {book['last_change']}" if book["last_change"] else "none after the first"
        log.warning("the book barely changes: %d of %d rebalances change it (%s); costs, the "
                    "turnover penalty or a universe of few eligible stocks may outweigh the "
                    "predicted returns", book["changed"], book["rebalances"], last)

    clock = time.perf_counter()
    backtest = run_portfolio_backtest(panel, weights, test_start, test_end, cash=config.cash,
                                      cost_bps=config.cost_bps)
    timings["backtest"] = time.perf_counter() - clock
    returns = backtest.returns
    realised = pd.DataFrame(data.labels, index=data.dates, columns=list(data.tickers))
    metrics = {
        # backtrader's turnover is traded value / book value; one-way turnover is half that.
        "portfolio": performance_metrics(returns, backtest.turnover / 2.0),
        "benchmark": performance_metrics(benchmark.reindex(returns.index).fillna(0.0)),
        "factor": ic_summary(predictions, realised.reindex(predictions.index)),
        "backtrader_sharpe": backtest.sharpe,
        "model": model_name,
        "test_period": [str(test_start.date()), str(test_end.date())],
        "rebalancing": {k: book[k] for k in ("rebalances", "changed", "fraction_changed",
                                               "mean_turnover", "frozen")},
    }
    bench_aligned = benchmark.reindex(returns.index).fillna(0.0).rename(benchmark.name)
    p = metrics["portfolio"]
    log.info("seconds: features %.1f, fit and predict %.1f, optimizer %.1f (%d rebalances), "
             "backtest %.1f", timings["features"], timings["fit_predict"], timings["optimizer"],
             len(decision_dates), timings["backtest"])
    log.info("annual return %.2f%%, Sharpe %.2f, max drawdown %.2f%%, RankIC %.4f",
             100 * p["annual_return"], p["sharpe"], 100 * p["max_drawdown"],
             metrics["factor"]["RankIC"])
    return PortfolioResult(
        config=config, panel=panel, split=split, model_name=model_name,
        model_config=model_config, predictions=predictions, weights=weights,
        equity=backtest.equity, returns=returns.rename(f"{model_name} + {config.optimizer}"),
        benchmark=bench_aligned, metrics=metrics, max_weight=cap,
        fit_seconds=fit_seconds, seconds=time.perf_counter() - started,
        refits=refits, timings={k: round(v, 2) for k, v in timings.items()})


class _SeedFit(NamedTuple):
    """One seed's test predictions and what produced them."""

    predictions: pd.DataFrame
    refits: list
    model_name: str
    model_config: dict
    fit_seconds: float


def _fit_predict(config: PortfolioConfig, seed: int, data, split) -> _SeedFit:
    """One seed: one fit on the train range, or walk-forward refits."""
    from storm_bt.experiments.fitting import fit_model

    test_start, test_end = split.test
    if config.refit_every:
        from storm_bt.experiments.walkforward import walk_forward

        fitted = walk_forward(config.model, seed, config.model_settings, data, split,
                              config.refit_every, config.train_window)
        return _SeedFit(fitted.predictions, fitted.splits, config.model, fitted.model_config,
                        fitted.fit_seconds)
    fitted = fit_model(config.model, seed, config.model_settings, data, split)
    return _SeedFit(fitted.predictor.predict(data, test_start, test_end), [split],
                    fitted.predictor.name, fitted.predictor.config(), fitted.fit_seconds)



def _portfolio_task(config: PortfolioConfig) -> PortfolioResult:
    """One seed of a multi-seed run, light to send back from a worker (no panel)."""
    result = run_portfolio(config)
    result.panel = None
    return result


def run_portfolio_seeds(config: PortfolioConfig, seeds: tuple[int, ...],
                        grid=None) -> list[PortfolioResult]:
    """The same portfolio run for every seed, as independent tasks of a grid (in seed order).

    Each result is what `run_portfolio` returns for ``replace(config, seed=s)``, except that
    ``panel`` is None (every seed shares the data: load it once with `load_experiment_data`).
    """
    from dataclasses import replace

    from storm_bt.experiments.grid import GridSettings, Task, run_grid

    tasks = [Task(f"{config.model} seed {s}", _portfolio_task, replace(config, seed=s))
             for s in checked_seeds(seeds)]
    return run_grid(tasks, grid or GridSettings(), desc="portfolio seeds")


def seed_summary(results: list[PortfolioResult]) -> pd.DataFrame:
    """One row per seed: the portfolio's headline metrics and the predictions' RankIC."""
    rows = []
    for r in results:
        p, f = r.metrics["portfolio"], r.metrics["factor"]
        rows.append({"seed": r.config.seed, "annual_return": p["annual_return"],
                     "sharpe": p["sharpe"], "max_drawdown": p["max_drawdown"],
                     "volatility": p["annual_volatility"], "calmar": p["calmar"],
                     "cumulative_wealth": p["cumulative_wealth"],
                     "IC": f["IC"], "RankIC": f["RankIC"], "RankICIR": f["RankICIR"]})
    return pd.DataFrame(rows)
