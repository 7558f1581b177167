"""The paper's single-stock trading table: every model buys, holds or sells each traded stock.

    run_trading_table(TradingTableConfig) -> TradingTableResult

Per seed, each predictor is fitted ONCE on every ticker of the universe (the
cross-sectional models need it), then used for every traded stock:

    buy-and-hold            buy on the first test day, hold to the end
    lightgbm, lstm,         the predictor's next-day return s_t with `ThresholdPolicy`:
    transformer               BUY if s_t > thr, SELL if s_t < -thr (thr = the cost rate)
    dqn, sac, ppo           an agent on the stock's price state (`states.price_states`)
    storm, storm-ts,        PPO on the fitted model's factor state (`states.storm_states`):
    storm-cs                  the paper's STORM agent; storm-ts = STORM-w/o-CS (time-series
                              branch only), storm-cs = STORM-w/o-TS (cross-sectional only)

Agents train in `TradingEnv` on the train + valid range (train_start .. test_start - 1: the
agents have no early stopping, and the valid range is the one where the factor model's
states are out of sample, like the test's), then their greedy policy trades the test
period inside backtrader (`strategies.run_trading_backtest`), as every other model does.

Metrics per (model, ticker, seed) from the values V_{-1} = cash, V_0, ..., V_{N-1}
(`reports.trading_metrics`): APY = (V_N / V_0)^(252/N) - 1, CW = V_N / V_0, CR = APY / MDD,
ASR = mean(r) / std(r) sqrt(252), MDD from the initial value, AVO = std(r) sqrt(252). The
summary tables over seeds are `reports.trading_summary` / `reports.tables.trading_markdown`.

Every setting is checked when the config is built, before any data is read; the traded
tickers are checked against the data (listed on the first test day, a year of training
rows) right after loading, before any model is fitted. torch, gymnasium, stable-baselines3
and backtrader load only when a run starts.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import pandas as pd

from storm_bt.data.panel import Panel
from storm_bt.errors import StormBtError
from storm_bt.experiments.data import DataConfig
from storm_bt.features.dataset import FeatureSet, Split
from storm_bt.models.registry import ModelSettings
from storm_bt.trading.rows import (PAPER_TICKERS, PREDICTOR_MODELS, PRICE_AGENTS, TABLE_MODELS,
                                   TIMESTEPS)
from storm_bt.units import bps_to_fraction

if TYPE_CHECKING:  # backtrader loads only when a run starts
    from strategies.runner import TradingResult

log = logging.getLogger(__name__)

#: Fewest days of a traded stock in the agents' training range.
MIN_AGENT_DAYS = 252


@dataclass(frozen=True)
class TradingTableConfig:
    """Everything a trading table depends on.

    Attributes:
        data: prices and split; ``data.tickers`` are the traded stocks (None: those of
            `PAPER_TICKERS` in the data).
        universe: the tickers the predictors are fitted on (None: every ticker in the data);
            the traded stocks are always added, and the data's order is kept.
        models: rows of the table, any of `TABLE_MODELS` (run in the table's order).
        seeds: one run of every model per seed.
        model_settings: preset, epochs, device, threads and cache of the predictors; the
            preset also sets the agents' timesteps (`TIMESTEPS`).
        timesteps: environment steps of every agent (None: `TIMESTEPS[preset]` per algo).
        cash: initial cash.
        cost_bps: commission in basis points of traded value.
        threshold: the threshold policy's |s| (None: the cost rate, cost_bps / 1e4).
        with_position: the agents also see their position flag (STORM_SPEC D23).
        agent_threads: torch threads while an agent trains.
    """

    data: DataConfig = field(default_factory=DataConfig)
    universe: tuple[str, ...] | None = None
    models: tuple[str, ...] = TABLE_MODELS
    seeds: tuple[int, ...] = (1337,)
    model_settings: ModelSettings = field(default_factory=ModelSettings)
    timesteps: int | None = None
    cash: float = 1e5
    cost_bps: float = 1.0
    threshold: float | None = None
    with_position: bool = False
    agent_threads: int = 1

    def __post_init__(self) -> None:
        models = tuple(dict.fromkeys(self.models))
        unknown = [m for m in models if m not in TABLE_MODELS]
        if unknown:
            raise StormBtError(f"--models: unknown model {unknown[0]!r}; choose from "
                               f"{', '.join(TABLE_MODELS)}")
        if not models:
            raise StormBtError("--models: give at least one model")
        object.__setattr__(self, "models", models)
        seeds = tuple(dict.fromkeys(self.seeds))
        if not seeds or not all(isinstance(s, int) and 0 <= s < 2**32 for s in seeds):
            raise StormBtError(f"--seeds {' '.join(map(str, self.seeds))}: give one or more "
                               "integers in [0, 2^32)")
        object.__setattr__(self, "seeds", seeds)
        if self.universe is not None:
            if not self.universe:
                raise StormBtError("--universe: give at least one ticker (or leave it out)")
            object.__setattr__(self, "universe", tuple(dict.fromkeys(self.universe)))
        if self.timesteps is not None and self.timesteps < 1:
            raise StormBtError(f"--timesteps {self.timesteps}: must be at least 1")
        if not (math.isfinite(self.cash) and self.cash > 0):
            raise StormBtError(f"--cash {self.cash}: must be a positive number")
        bps_to_fraction(self.cost_bps)
        if self.threshold is not None and not self.threshold >= 0:
            raise StormBtError(f"--threshold {self.threshold}: must be >= 0")
        if self.agent_threads < 1:
            raise StormBtError(f"agent_threads {self.agent_threads}: use at least 1 thread")

    @property
    def cost(self) -> float:
        """The commission as a fraction of traded value."""
        return bps_to_fraction(self.cost_bps)

    def resolved_threshold(self) -> float:
        """The threshold policy's |s|: the given one, else the cost rate."""
        return self.cost if self.threshold is None else float(self.threshold)

    def agent_timesteps(self) -> dict[str, int]:
        """Environment steps per agent algorithm."""
        return {a: int(self.timesteps or TIMESTEPS[self.model_settings.preset][a])
                for a in PRICE_AGENTS}

    def agent(self, algo: str, seed: int):
        """The `AgentConfig` of one agent (imports the RL stack)."""
        from storm_bt.trading.agents import AgentConfig

        return AgentConfig(algo=algo, timesteps=self.agent_timesteps()[algo], seed=seed,
                           with_position=self.with_position, threads=self.agent_threads)

    @classmethod
    def from_dict(cls, values: dict) -> "TradingTableConfig":
        """The config recorded in a run's config.json (see `storm_bt.experiments.record`)."""
        from storm_bt.experiments.record import config_from_dict

        return config_from_dict(cls, values, ("universe", "models", "seeds"))


@dataclass
class TradingRun:
    """One (model, ticker, seed): its metrics and its backtest (`strategies.TradingResult`:
    equity, returns, values, actions, trades)."""

    model: str
    ticker: str
    seed: int
    metrics: dict[str, float]
    result: "TradingResult"
    seconds: float
    extra: dict = field(default_factory=dict)


@dataclass
class TradingTableResult:
    """What a trading table run produced.

    Attributes:
        config: the config it ran.
        table: one row per run: model, ticker, seed, APY, CW, CR, ASR, MDD, AVO (fractions).
        runs: every (model, ticker, seed) with its backtest, in the table's order.
        traded: the traded stocks.
        fit_seconds, model_seconds: "model/seed" -> seconds fitting the predictor, and for
            the whole row (fit, states, agents, backtests).
        predictor_configs: model -> the fitted predictor's config.
        panel, split: the universe's prices (cut at the test end) and the split.
        seconds: the run's wall time.
    """

    config: TradingTableConfig
    table: pd.DataFrame
    runs: list[TradingRun]
    traded: tuple[str, ...]
    fit_seconds: dict[str, float]
    model_seconds: dict[str, float]
    predictor_configs: dict[str, dict]
    panel: Panel
    split: Split
    seconds: float

    def equity(self) -> pd.DataFrame:
        """model, ticker, seed, date (YYYY-MM-DD), value V_t and executed action per bar."""
        return pd.concat([
            pd.DataFrame({"model": r.model, "ticker": r.ticker, "seed": r.seed,
                          "date": r.result.equity.index.strftime("%Y-%m-%d"),
                          "value": r.result.equity.to_numpy(),
                          "action": r.result.actions.to_numpy()}) for r in self.runs])


# ---------------------------------------------------------------------- data
def load_trading_data(config: TradingTableConfig) -> tuple[Panel, Split, tuple[str, ...]]:
    """(the universe's panel cut at the test end, the split, the traded tickers), checked."""
    from storm_bt.experiments.data import load_experiment_data

    panel, split = load_experiment_data(replace(config.data, tickers=None))
    traded = config.data.tickers or tuple(t for t in PAPER_TICKERS if t in panel.tickers)
    if not traded:
        raise StormBtError(f"{panel.source}: none of the paper's tickers "
                           f"{' '.join(PAPER_TICKERS)} is in the data; pass --tickers")
    panel.select(traded)  # unknown traded tickers fail here, naming them
    if config.universe:  # in the data's order, so the model checkpoints match other runs
        panel.select(config.universe)  # unknown tickers fail here, naming them
        wanted = {*config.universe, *traded}
        panel = panel.select([t for t in panel.tickers if t in wanted])
    if len(panel.tickers) < 2:
        raise StormBtError(f"{panel.source}: the models need at least 2 tickers in the "
                           f"universe, got {len(panel.tickers)}")
    check_tickers(panel, split, traded)
    return panel, split, traded


def check_tickers(panel: Panel, split: Split, tickers: tuple[str, ...]) -> None:
    """Every traded ticker is in the panel, trades on the first test day, and has a year of
    rows in the agents' training range."""
    panel.select(list(tickers))  # unknown tickers: one StormBtError naming them
    test_start = split.test[0]
    rl_start, rl_end = split.train_start, split.valid[1]
    dates = panel.dates
    first_test = int(dates.searchsorted(test_start))
    in_rl = (dates >= rl_start) & (dates <= rl_end)
    for ticker in tickers:
        s = panel.tickers.index(ticker)
        if first_test >= len(dates) or not panel.mask[first_test, s]:
            raise StormBtError(f"{panel.source}: {ticker} has no row on the first test day "
                               f"{test_start.date()}; pick a ticker that trades over the whole "
                               "test period or move --test-start")
        n = int(panel.mask[in_rl, s].sum())
        if n < MIN_AGENT_DAYS:
            raise StormBtError(f"{panel.source}: {ticker} has {n} days between --train-start "
                               f"{rl_start.date()} and --test-start {test_start.date()}; the "
                               f"agents need at least {MIN_AGENT_DAYS} to train on")


# ---------------------------------------------------------------------- the run
class _TableRun:
    """The rows of one run; `model_runs(model, seed)` gives every traded stock of one row."""

    def __init__(self, config: TradingTableConfig, panel: Panel, split: Split,
                 traded: tuple[str, ...], data: FeatureSet) -> None:
        self.config, self.panel, self.split, self.traded, self.data = (config, panel, split,
                                                                        traded, data)
        self.rl_range = (split.train_start, split.valid[1])
        self.fit_seconds: dict[str, float] = {}
        self.predictor_configs: dict[str, dict] = {}

    def _trade(self, model: str, ticker: str, seed: int, signals, policy, started: float,
               **extra) -> TradingRun:
        from reports import trading_metrics
        from strategies import run_trading_backtest

        result = run_trading_backtest(self.panel, ticker, signals, policy, *self.split.test,
                                      cash=self.config.cash, cost_bps=self.config.cost_bps)
        metrics = trading_metrics(pd.Series(result.values))
        run = TradingRun(model, ticker, seed, metrics, result, time.perf_counter() - started,
                         extra)
        log.info("%-12s %-5s seed %d: APY %7.2f%%  CW %.4f  ASR %6.3f  MDD %6.2f%%  "
                 "%3d trades (%.0f s)", model, ticker, seed, 100 * metrics["APY"],
                 metrics["CW"], metrics["ASR"], 100 * metrics["MDD"], len(result.trades),
                 run.seconds)
        return run

    def _fitted(self, model: str, seed: int):
        from storm_bt.experiments.fitting import fit_model

        fitted = fit_model(model, seed, self.config.model_settings, self.data, self.split)
        self.fit_seconds[f"{model}/{seed}"] = fitted.fit_seconds
        self.predictor_configs[model] = fitted.predictor.config()
        return fitted.predictor

    def _agent_runs(self, model: str, algo: str, seed: int,
                    states: dict[str, pd.DataFrame]) -> list[TradingRun]:
        """Train one agent per ticker on its states, then trade the test period."""
        from storm_bt.trading.agents import train_agent
        from storm_bt.trading.states import standardise, training_arrays

        runs = []
        rl_start, rl_end = self.rl_range
        test_start, test_end = self.split.test
        for ticker in self.traded:
            started = time.perf_counter()
            frame = standardise(states[ticker], rl_start, rl_end)
            x, prices = training_arrays(frame, self.panel, ticker, rl_start, rl_end)
            agent = train_agent(x, prices, self.config.agent(algo, seed), cash=self.config.cash,
                                cost=self.config.cost)
            runs.append(self._trade(model, ticker, seed, frame.loc[test_start:test_end],
                                    agent.policy(), started, train_days=len(prices),
                                    state_dim=x.shape[1]))
        return runs

    def model_runs(self, model: str, seed: int) -> list[TradingRun]:
        """Every traded stock for one model and seed (the predictor fitted once)."""
        from storm_bt.trading.policies import BuyAndHold, ThresholdPolicy
        from storm_bt.trading.states import price_states, storm_states

        test_start, test_end = self.split.test
        rl_start = self.rl_range[0]
        if model == "buy-and-hold":
            return [self._trade(model, t, seed, None, BuyAndHold(), time.perf_counter())
                    for t in self.traded]
        if model in PREDICTOR_MODELS:
            predictions = self._fitted(model, seed).predict(self.data, test_start, test_end)
            policy = ThresholdPolicy(self.config.resolved_threshold())
            return [self._trade(model, t, seed, predictions[t], policy, time.perf_counter())
                    for t in self.traded]
        if model in PRICE_AGENTS:
            states = {t: price_states(self.data, t, rl_start, test_end) for t in self.traded}
            return self._agent_runs(model, model, seed, states)
        predictor = self._fitted(model, seed)
        started = time.perf_counter()
        states = storm_states(predictor, self.data, list(self.traded), rl_start, test_end)
        first = next(iter(states.values()))
        log.info("%s seed %d: factor states of %d tickers, %d days, width %d, in %.0f s", model,
                 seed, len(self.traded), len(first), first.shape[1],
                 time.perf_counter() - started)
        return self._agent_runs(model, "ppo", seed, states)


def run_trading_table(config: TradingTableConfig) -> TradingTableResult:
    """Every model of ``config`` on every traded stock and seed (see the module docstring)."""
    from reports.tables import TRADING_METRICS
    from storm_bt.features.dataset import build_feature_set
    from storm_bt.runtime import seed_everything

    started = time.perf_counter()
    panel, split, traded = load_trading_data(config)
    log.info("features for %d tickers x %d days", len(panel.tickers), len(panel.dates))
    table_run = _TableRun(config, panel, split, traded, build_feature_set(panel))
    runs: list[TradingRun] = []
    model_seconds: dict[str, float] = {}
    for seed in config.seeds:
        for model in (m for m in TABLE_MODELS if m in config.models):
            seed_everything(seed)
            t0 = time.perf_counter()
            runs.extend(table_run.model_runs(model, seed))
            model_seconds[f"{model}/{seed}"] = time.perf_counter() - t0
            log.info("%s seed %d: all %d tickers in %.0f s", model, seed, len(traded),
                     model_seconds[f"{model}/{seed}"])
    table = pd.DataFrame([{"model": r.model, "ticker": r.ticker, "seed": r.seed,
                           **{m: r.metrics[m] for m in TRADING_METRICS}} for r in runs],
                         columns=["model", "ticker", "seed", *TRADING_METRICS])
    return TradingTableResult(
        config=config, table=table, runs=runs, traded=traded,
        fit_seconds=table_run.fit_seconds, model_seconds=model_seconds,
        predictor_configs=table_run.predictor_configs, panel=panel, split=split,
        seconds=time.perf_counter() - started)
