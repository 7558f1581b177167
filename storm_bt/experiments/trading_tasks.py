"""The trading table's tasks: what a grid worker runs (see `storm_bt.experiments.trading_table`).

Two waves of independent, picklable tasks: `FitTask` (one predictor for one seed: its test
predictions, or its STORM factor states, for every traded stock) and `RowTask` (one row for
one stock: a threshold backtest given the fit's signals, or an agent trained and then
traded). Each process prepares the table's data once (`_prepared`).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import pandas as pd

from storm_bt.experiments.data import members_only
from storm_bt.experiments.trading_table import (TradingRun, TradingTableConfig, load_trading_data)
from storm_bt.features.dataset import FeatureSet, Split
from storm_bt.data.panel import Panel
from storm_bt.trading.rows import PREDICTOR_MODELS, PRICE_AGENTS, STORM_MODELS, TABLE_MODELS

log = logging.getLogger(__name__)


@dataclass
class _Prepared:
    """What every task of one table reads: the universe's panel, the split, the traded
    stocks, the membership, and the feature set (built on first use)."""

    panel: Panel
    split: Split
    traded: tuple[str, ...]
    member: pd.DataFrame | None
    _data: FeatureSet | None = None

    @property
    def data(self) -> FeatureSet:
        """The features of the universe, members only (`restrict_to_members`)."""
        if self._data is None:
            from storm_bt.experiments.data import restrict_to_members
            from storm_bt.features.dataset import build_feature_set

            log.info("features for %d tickers x %d days", len(self.panel.tickers),
                     len(self.panel.dates))
            self._data = restrict_to_members(build_feature_set(self.panel), self.member)
        return self._data


#: The prepared data of one table, per process (a grid worker runs many tasks of it).
_PREPARED: dict = {}


def _prepared(config: TradingTableConfig) -> _Prepared:
    from storm_bt.experiments.data import membership_frame

    key = (config.data, config.universe)
    if key not in _PREPARED:
        _PREPARED.clear()  # one data set at a time: a feature set can take gigabytes
        panel, split, traded = load_trading_data(config)
        _PREPARED[key] = _Prepared(panel, split, traded, membership_frame(config.data, panel))
    return _PREPARED[key]


@dataclass(frozen=True)
class FitTask:
    """Fit one predictor for one seed on the universe; the predictions (LightGBM, LSTM,
    Transformer) or the factor states (the STORM rows) of every traded stock come back."""

    config: TradingTableConfig
    model: str
    seed: int


@dataclass
class FitOutcome:
    """A fitted predictor's signals: ticker -> its test predictions (a Series) or its factor
    states on the agents' range and the test period (a date x state frame)."""

    model: str
    seed: int
    signals: dict
    predictor_config: dict
    fit_seconds: float
    #: fitting, predicting and the states
    seconds: float


@dataclass(frozen=True)
class RowTask:
    """One cell of the table: ``model`` on ``ticker`` for ``seed``. ``signals`` are the
    fitted predictor's (`FitOutcome.signals[ticker]`) for the rows that need one."""

    config: TradingTableConfig
    model: str
    ticker: str
    seed: int
    signals: pd.Series | pd.DataFrame | None = None


def run_fit_task(task: FitTask) -> FitOutcome:
    """Fit ``task.model`` with ``task.seed`` and compute its signals for every traded stock:
    a pure function of its picklable task."""
    from storm_bt.experiments.fitting import fit_model
    from storm_bt.runtime import seed_everything
    from storm_bt.trading.states import storm_states

    prep = _prepared(task.config)
    seed_everything(task.seed)
    started = time.perf_counter()
    fitted = fit_model(task.model, task.seed, task.config.model_settings, prep.data, prep.split)
    predictor = fitted.predictor
    test_start, test_end = prep.split.test
    if task.model in PREDICTOR_MODELS:
        predictions = members_only(predictor.predict(prep.data, test_start, test_end),
                                   prep.member)
        signals = {t: predictions[t] for t in prep.traded}
    else:
        t0 = time.perf_counter()
        signals = storm_states(predictor, prep.data, list(prep.traded), prep.split.train_start,
                               test_end)
        first = next(iter(signals.values()))
        log.info("%s seed %d: factor states of %d tickers, %d days, width %d, in %.0f s",
                 task.model, task.seed, len(prep.traded), len(first), first.shape[1],
                 time.perf_counter() - t0)
    return FitOutcome(task.model, task.seed, signals, predictor.config(), fitted.fit_seconds,
                      time.perf_counter() - started)


def run_row_task(task: RowTask) -> TradingRun:
    """Trade ``task.ticker`` with ``task.model`` over the test period (training the agent
    first for the RL rows): a pure function of its picklable task."""
    from storm_bt.runtime import seed_everything
    from storm_bt.trading.policies import BuyAndHold, ThresholdPolicy

    config, prep = task.config, _prepared(task.config)
    seed_everything(task.seed)
    started = time.perf_counter()
    if task.model == "buy-and-hold":
        return _trade(config, prep, task, None, BuyAndHold(), started)
    if task.model in PREDICTOR_MODELS:
        return _trade(config, prep, task, task.signals,
                      ThresholdPolicy(config.resolved_threshold()), started)
    from storm_bt.trading.agents import train_agent
    from storm_bt.trading.states import price_states, standardise, training_arrays

    rl_start, rl_end = prep.split.train_start, prep.split.valid[1]
    test_start, test_end = prep.split.test
    if task.model in PRICE_AGENTS:
        algo, states = task.model, price_states(prep.data, task.ticker, rl_start, test_end)
    else:  # the STORM rows: PPO on the factor states
        algo, states = "ppo", task.signals
    frame = standardise(states, rl_start, rl_end)
    x, prices = training_arrays(frame, prep.panel, task.ticker, rl_start, rl_end)
    agent = train_agent(x, prices, config.agent(algo, task.seed), cash=config.cash,
                        cost=config.cost)
    return _trade(config, prep, task, frame.loc[test_start:test_end], agent.policy(), started,
                  train_days=len(prices), state_dim=x.shape[1])


def _trade(config: TradingTableConfig, prep: _Prepared, task: RowTask, signals, policy,
           started: float, **extra) -> TradingRun:
    from reports import trading_metrics
    from strategies import run_trading_backtest

    result = run_trading_backtest(prep.panel, task.ticker, signals, policy, *prep.split.test,
                                  cash=config.cash, cost_bps=config.cost_bps, fill=config.fill)
    metrics = trading_metrics(pd.Series(result.values))
    run = TradingRun(task.model, task.ticker, task.seed, metrics, result,
                     time.perf_counter() - started, extra)
    log.info("%-12s %-5s seed %d: APY %7.2f%%  CW %.4f  ASR %6.3f  MDD %6.2f%%  "
             "%3d trades (%.0f s)", task.model, task.ticker, task.seed, 100 * metrics["APY"],
             metrics["CW"], metrics["ASR"], 100 * metrics["MDD"], len(result.trades),
             run.seconds)
    return run


#: Rough cost order of the rows, most expensive first: the grid starts long tasks first,
#: so that the workers finish together (the merged result does not depend on it).
_COST_ORDER: tuple[str, ...] = ("sac", "dqn", "ppo", "storm", "storm-ts", "storm-cs",
                                "transformer", "lstm", "lightgbm", "buy-and-hold")


def _by_cost(tasks: list) -> list:
    return sorted(tasks, key=lambda t: _COST_ORDER.index(t.config.model))


def table_tasks(config: TradingTableConfig, traded: tuple[str, ...]):
    """The first wave of the grid: a `FitTask` per (seed, fitted model) and a `RowTask` per
    row that needs no fit (buy-and-hold, the price agents), fits first, then by cost."""
    from storm_bt.experiments.grid import Task

    models = [m for m in TABLE_MODELS if m in config.models]
    fits = [Task(f"fit {m} seed {seed}", run_fit_task, FitTask(config, m, seed))
            for seed in config.seeds for m in models
            if m in PREDICTOR_MODELS or m in STORM_MODELS]
    rows = [Task(f"{m} {t} seed {seed}", run_row_task, RowTask(config, m, t, seed))
            for seed in config.seeds for m in models if m not in PREDICTOR_MODELS
            and m not in STORM_MODELS for t in traded]
    return fits + _by_cost(rows)


def fitted_row_tasks(config: TradingTableConfig, traded: tuple[str, ...],
                     fits: list[FitOutcome]):
    """The second wave: a `RowTask` per (seed, fitted model, ticker) with its signals."""
    from storm_bt.experiments.grid import Task

    rows = [Task(f"{f.model} {t} seed {f.seed}", run_row_task,
                 RowTask(config, f.model, t, f.seed, f.signals[t]))
            for f in fits for t in traded]
    return _by_cost(rows)


