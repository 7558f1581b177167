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
Test orders fill at the decision day's close (``fill="close"``, the paper's market-on-close
and the environment's accounting) or at the next bar's open (``fill="next-open"``).

The table is a grid of independent tasks (`storm_bt.experiments.grid`), each a pure
function of a picklable config:

    wave 1   FitTask (seed, predictor)  -> the predictions, or the STORM factor states,
                                           of every traded stock
             RowTask (seed, row, ticker) for the rows that need no fit: buy-and-hold and
                                           the price agents (train, then backtest)
    wave 2   RowTask (seed, row, ticker) for the fitted rows, given their fit's signals

so a predictor is fitted once per seed and shared by its rows, the agents of different
stocks train at once, and the rows are merged in the table's order: a parallel run gives
exactly the serial run's table. A task's randomness is its own (the process is seeded
with the task's seed; an agent seeds its networks, exploration and environments).

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

import numpy as np
import pandas as pd

from storm_bt.data.panel import Panel
from storm_bt.errors import StormBtError
from storm_bt.experiments.data import DataConfig
from storm_bt.features.dataset import Split
from storm_bt.models.registry import ModelSettings
from storm_bt.runtime import checked_seeds
from storm_bt.trading.account import FILLS
from storm_bt.trading.rows import (PAPER_TICKERS, PRICE_AGENTS, TABLE_MODELS, TIMESTEPS)
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
        fill: where the test trades fill: "close" (the decision day's close, the paper's
            market-on-close and the environment's accounting) or "next-open" (the next
            bar's open; the agents still train with same-close accounting).
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
    fill: str = "close"

    def __post_init__(self) -> None:
        models = tuple(dict.fromkeys(self.models))
        unknown = [m for m in models if m not in TABLE_MODELS]
        if unknown:
            raise StormBtError(f"--models: unknown model {unknown[0]!r}; choose from "
                               f"{', '.join(TABLE_MODELS)}")
        if not models:
            raise StormBtError("--models: give at least one model")
        object.__setattr__(self, "models", models)
        from storm_bt.models.registry import MODELS
        self.model_settings.check_models([m for m in models if m in MODELS])
        object.__setattr__(self, "seeds", checked_seeds(self.seeds))
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
        if self.fill not in FILLS:
            raise StormBtError(f"--fill {self.fill!r}: choose one of {', '.join(FILLS)}")

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
    check_cash(panel, split, traded, config.cash)
    return panel, split, traded


def check_cash(panel: Panel, split: Split, tickers: tuple[str, ...], cash: float) -> None:
    """Refuse a starting cash that buys no whole share of a traded ticker on the first test
    day (orders are in whole shares, so every row of its table would hold cash alone)."""
    first_test = int(panel.dates.searchsorted(split.test[0]))
    prices = panel.array("adj_close")[first_test]
    for ticker in tickers:
        price = float(prices[panel.tickers.index(ticker)])
        if cash < price:
            raise StormBtError(f"--cash {cash:g} buys no share of {ticker} (adjusted close "
                               f"{price:.2f} on the first test day {split.test[0].date()}); "
                               "give more cash")


def check_tickers(panel: Panel, split: Split, tickers: tuple[str, ...]) -> None:
    """Every traded ticker is in the panel, trades on the first and the last test day, and
    has a year of rows in the agents' training range."""
    panel.select(list(tickers))  # unknown tickers: one StormBtError naming them
    test_start, test_end = split.test
    rl_start, rl_end = split.train_start, split.valid[1]
    dates = panel.dates
    first_test = int(dates.searchsorted(test_start))
    last_test = int(dates.searchsorted(test_end, side="right")) - 1
    in_rl = (dates >= rl_start) & (dates <= rl_end)
    for ticker in tickers:
        s = panel.tickers.index(ticker)
        if first_test >= len(dates) or not panel.mask[first_test, s]:
            raise StormBtError(f"{panel.source}: {ticker} has no row on the first test day "
                               f"{test_start.date()}; pick a ticker that trades over the whole "
                               "test period or move --test-start")
        last_row = dates[np.flatnonzero(panel.mask[:, s])[-1]]
        if last_row < dates[last_test]:
            raise StormBtError(f"{panel.source}: {ticker}'s rows end on {last_row.date()}, "
                               f"inside the test period (to {dates[last_test].date()}); its "
                               "value would be frozen after that; pick a ticker that trades "
                               "over the whole test period or move --test-end")
        n = int(panel.mask[in_rl, s].sum())
        if n < MIN_AGENT_DAYS:
            raise StormBtError(f"{panel.source}: {ticker} has {n} days between --train-start "
                               f"{rl_start.date()} and --test-start {test_start.date()}; the "
                               f"agents need at least {MIN_AGENT_DAYS} to train on")


def run_trading_table(config: TradingTableConfig, grid=None) -> TradingTableResult:
    """Every model of ``config`` on every traded stock and seed (see the module docstring).

    The table is a grid of independent tasks (`storm_bt.experiments.grid`): first every
    predictor fit (seed x model) and every row that needs no fit, then the rows of the
    fitted models (agent x ticker), each given its predictor's signals. ``grid`` runs them
    on several processes or a Ray cluster; the rows are merged in the table's order, so the
    result is the serial run's.
    """
    from reports.tables import TRADING_METRICS
    from storm_bt.experiments.grid import GridSettings, run_grid
    from storm_bt.experiments.trading_tasks import (_PREPARED, FitOutcome, _prepared,
                                                    fitted_row_tasks, table_tasks)

    started = time.perf_counter()
    grid = grid or GridSettings()
    prep = _prepared(config)  # checks the traded stocks before any task starts
    panel, split, traded = prep.panel, prep.split, prep.traded
    try:
        first = run_grid(table_tasks(config, traded), grid, desc="trading: fits and rows")
        fits = [o for o in first if isinstance(o, FitOutcome)]
        second = run_grid(fitted_row_tasks(config, traded, fits), grid,
                          desc="trading: fitted rows")
    finally:
        _PREPARED.clear()
    by_key = {(r.model, r.ticker, r.seed): r for r in first + second
              if isinstance(r, TradingRun)}
    runs = [by_key[(m, t, seed)] for seed in config.seeds
            for m in TABLE_MODELS if m in config.models for t in traded]
    model_seconds: dict[str, float] = {}
    for f in fits:
        model_seconds[f"{f.model}/{f.seed}"] = f.seconds
    for r in runs:
        key = f"{r.model}/{r.seed}"
        model_seconds[key] = model_seconds.get(key, 0.0) + r.seconds
    table = pd.DataFrame([{"model": r.model, "ticker": r.ticker, "seed": r.seed,
                           **{m: r.metrics[m] for m in TRADING_METRICS}} for r in runs],
                         columns=["model", "ticker", "seed", *TRADING_METRICS])
    return TradingTableResult(
        config=config, table=table, runs=runs, traded=traded,
        fit_seconds={f"{f.model}/{f.seed}": f.fit_seconds for f in fits},
        model_seconds=model_seconds,
        predictor_configs={f.model: f.predictor_config for f in fits},
        panel=panel, split=split, seconds=time.perf_counter() - started)
