"""The paper's single-stock trading table: every model per ticker on the test period.

Per seed, each predictor is fitted ONCE on all tickers of the panel (the cross-sectional
models need the universe), then used for every traded ticker:

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
period inside backtrader (`strategies.trading`), as every other model does.

Metrics per (model, ticker, seed) from the values V_{-1} = cash, V_0, ..., V_{N-1}
(`reports.trading_metrics`): APY = (V_N / V_0)^(252/N) - 1, CW = V_N / V_0, CR = APY / MDD,
ASR = mean(r) / std(r) sqrt(252), MDD from the initial value, AVO = std(r) sqrt(252).

Tables (`summary_tables`): rows = models, columns = ticker x {APY, CW, CR} and
ticker x {ASR, MDD, AVO}, each cell the mean over seeds (± the standard deviation with
ddof=1 when there are several seeds); the last row, "Improvement(%)", compares STORM's mean
with the best baseline's mean (buy-and-hold, lightgbm, lstm, transformer, dqn, sac, ppo;
the ablations are not baselines): 100 (STORM - best) / |best| for APY, CW, CR, ASR (best =
the highest), 100 (best - STORM) / |best| for MDD and AVO (best = the lowest), so a
positive number always means STORM is better. For MDD and AVO a baseline whose value is 0
(it never held the stock, e.g. an agent that learnt to stay in cash) is left out: doing
nothing would always "win" there and the ratio would divide by 0. "n/a" where the
improvement is undefined (no finite value to compare).
"""
from __future__ import annotations

import logging
import time
import warnings
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Callable

import numpy as np
import pandas as pd

from storm_bt.data.panel import Panel
from storm_bt.dataset import FeatureSet, Split
from storm_bt.errors import StormBtError
from storm_bt.trading.agents import AgentConfig, TrainedAgent, train_agent

if TYPE_CHECKING:  # backtrader is imported only when a backtest runs
    from strategies.trading import TradingResult

log = logging.getLogger(__name__)

PREDICTOR_MODELS: tuple[str, ...] = ("lightgbm", "lstm", "transformer")
PRICE_AGENTS: tuple[str, ...] = ("dqn", "sac", "ppo")
STORM_MODELS: tuple[str, ...] = ("storm-cs", "storm-ts", "storm")
#: Every model, in the table's row order.
ALL_MODELS: tuple[str, ...] = ("buy-and-hold", *PREDICTOR_MODELS, *PRICE_AGENTS, *STORM_MODELS)
BASELINES: tuple[str, ...] = ("buy-and-hold", *PREDICTOR_MODELS, *PRICE_AGENTS)
#: The paper's display names.
LABELS = {"buy-and-hold": "Buy&Hold", "lightgbm": "LightGBM", "lstm": "LSTM",
          "transformer": "Transformer", "dqn": "DQN", "sac": "SAC", "ppo": "PPO",
          "storm-cs": "STORM-w/o-TS", "storm-ts": "STORM-w/o-CS", "storm": "STORM"}
METRICS: tuple[str, ...] = ("APY", "CW", "CR", "ASR", "MDD", "AVO")
TABLE_1: tuple[str, ...] = ("APY", "CW", "CR")
TABLE_2: tuple[str, ...] = ("ASR", "MDD", "AVO")
LOWER_IS_BETTER = frozenset({"MDD", "AVO"})
IMPROVEMENT = "Improvement(%)"
#: The paper's five trading stocks (STORM_SPEC D18).
PAPER_TICKERS: tuple[str, ...] = ("AAPL", "JPM", "IBM", "INTC", "MSFT")

#: Default environment steps per agent and preset. Measured on AAPL (3,274 training days,
#: 1 thread, idle machine): PPO ~6,000 steps/s, DQN ~3,300, SAC ~400; so the ``small``
#: table's 20 PPO + 5 DQN + 5 SAC agents (5 tickers) take about 12 minutes of its hour.
TIMESTEPS: dict[str, dict[str, int]] = {
    "tiny": {"ppo": 2_048, "dqn": 2_000, "sac": 500},
    "small": {"ppo": 102_400, "dqn": 100_000, "sac": 20_000},
    "paper": {"ppo": 1_024_000, "dqn": 1_000_000, "sac": 200_000},
}


@dataclass(frozen=True)
class TableConfig:
    """What one table run trades and how.

    Attributes:
        models: rows to compute, any of `ALL_MODELS`.
        tickers: the traded stocks.
        seeds: one run of every stochastic model per seed.
        preset: budget preset of the agents' timesteps (tiny, small, paper).
        timesteps: environment steps of every agent (None: `TIMESTEPS[preset]` per algo).
        cash: initial cash.
        cost_bps: commission in basis points of traded value.
        threshold: the threshold policy's |s| (None: the cost rate cost_bps / 1e4).
        with_position: the agents also see their position flag (D23).
        agent_threads: torch threads while an agent trains.
    """

    models: tuple[str, ...] = ALL_MODELS
    tickers: tuple[str, ...] = PAPER_TICKERS
    seeds: tuple[int, ...] = (1337,)
    preset: str = "small"
    timesteps: int | None = None
    cash: float = 1e5
    cost_bps: float = 1.0
    threshold: float | None = None
    with_position: bool = False
    agent_threads: int = 1

    def __post_init__(self) -> None:
        unknown = [m for m in self.models if m not in ALL_MODELS]
        if unknown:
            raise StormBtError(f"--models: unknown model {unknown[0]!r}; choose from "
                               f"{', '.join(ALL_MODELS)}")
        if not self.models:
            raise StormBtError("--models: give at least one model")
        if not self.tickers:
            raise StormBtError("--tickers: give at least one ticker to trade")
        if self.preset not in TIMESTEPS:
            raise StormBtError(f"--preset {self.preset!r}: choose one of {', '.join(TIMESTEPS)}")
        if self.timesteps is not None and self.timesteps < 1:
            raise StormBtError(f"--timesteps {self.timesteps}: must be at least 1")
        if not (np.isfinite(self.cash) and self.cash > 0):
            raise StormBtError(f"--cash {self.cash}: must be a positive number")
        if not (np.isfinite(self.cost_bps) and self.cost_bps >= 0):
            raise StormBtError(f"--cost-bps {self.cost_bps}: must be >= 0")
        if self.threshold is not None and not self.threshold >= 0:
            raise StormBtError(f"--threshold {self.threshold}: must be >= 0")

    @property
    def cost(self) -> float:
        return self.cost_bps / 1e4

    def resolved_threshold(self) -> float:
        return self.cost if self.threshold is None else float(self.threshold)

    def agent(self, algo: str, seed: int) -> AgentConfig:
        steps = self.timesteps or TIMESTEPS[self.preset][algo]
        return AgentConfig(algo=algo, timesteps=int(steps), seed=seed,
                           with_position=self.with_position, threads=self.agent_threads)

    def ordered_models(self) -> list[str]:
        return [m for m in ALL_MODELS if m in self.models]

    def as_dict(self) -> dict:
        out = asdict(self)
        out["threshold"] = self.resolved_threshold()
        out["timesteps"] = {a: self.timesteps or TIMESTEPS[self.preset][a] for a in PRICE_AGENTS}
        return out


@dataclass
class TradingRun:
    """One (model, ticker, seed): its metrics and its backtest."""

    model: str
    ticker: str
    seed: int
    metrics: dict[str, float]
    result: "TradingResult"
    seconds: float
    extra: dict = field(default_factory=dict)


#: Builds the predictor `name` for a seed (the CLI binds its model flags here).
PredictorFactory = Callable[[str, int], object]


def check_tickers(panel: Panel, split: Split, tickers: tuple[str, ...]) -> None:
    """Every traded ticker is in the panel, trades on the first test day, and has a year of
    rows in the agents' training range."""
    panel.select(list(tickers))  # unknown tickers: one StormBtError naming them
    test_start, test_end = split.test
    rl_start, rl_end = split.train_start, split.valid[1]
    dates = panel.dates
    first_test = int(dates.searchsorted(test_start))
    for ticker in tickers:
        s = panel.tickers.index(ticker)
        if first_test >= len(dates) or not panel.mask[first_test, s]:
            raise StormBtError(f"{panel.source}: {ticker} has no row on the first test day "
                               f"{test_start.date()}; pick a ticker that trades over the whole "
                               "test period or move --test-start")
        in_rl = (dates >= rl_start) & (dates <= rl_end)
        n = int(panel.mask[in_rl, s].sum())
        if n < 252:
            raise StormBtError(f"{panel.source}: {ticker} has {n} days between --train-start "
                               f"{rl_start.date()} and --test-start {test_start.date()}; the "
                               "agents need at least 252 to train on")


def _env_arrays(states: pd.DataFrame, panel: Panel, ticker: str, start, end
                ) -> tuple[np.ndarray, np.ndarray]:
    """(states, adjusted closes) on the ticker's real trading days in [start, end]."""
    s = panel.tickers.index(ticker)
    rows = (panel.dates >= pd.Timestamp(start)) & (panel.dates <= pd.Timestamp(end)) \
        & panel.mask[:, s]
    days = panel.dates[rows]
    frame = states.reindex(days)
    keep = frame.notna().all(axis=1).to_numpy()
    prices = panel.array("adj_close")[rows, s]
    return frame.to_numpy(dtype=np.float32)[keep], prices[keep]


class TradingTable:
    """Runs the table; see the module docstring. `run()` returns one `TradingRun` per
    (model, ticker, seed)."""

    def __init__(self, panel: Panel, data: FeatureSet, split: Split, config: TableConfig,
                 make_predictor: PredictorFactory) -> None:
        check_tickers(panel, split, config.tickers)
        self.panel, self.data, self.split, self.config = panel, data, split, config
        self.make_predictor = make_predictor
        self.rl_range = (split.train_start, split.valid[1])
        self.predictor_configs: dict[str, dict] = {}
        #: (model, seed) -> seconds spent fitting the predictor (or reusing its checkpoint)
        self.fit_seconds: dict[tuple[str, int], float] = {}
        #: (model, seed) -> seconds for the whole row (fit, states, agents, backtests)
        self.model_seconds: dict[tuple[str, int], float] = {}

    # ------------------------------------------------------------------ pieces
    def _backtest(self, ticker: str, signals, policy):
        from strategies.trading import run_trading_backtest

        return run_trading_backtest(self.panel, ticker, signals, policy, *self.split.test,
                                    cash=self.config.cash, cost_bps=self.config.cost_bps)

    def _record(self, model: str, ticker: str, seed: int, result, started: float,
                **extra) -> TradingRun:
        from reports import trading_metrics

        metrics = trading_metrics(pd.Series(result.values))
        run = TradingRun(model, ticker, seed, metrics, result, time.perf_counter() - started,
                         extra)
        log.info("%-12s %-5s seed %d: APY %7.2f%%  CW %.4f  ASR %6.3f  MDD %6.2f%%  "
                 "%3d trades (%.0f s)", model, ticker, seed, 100 * metrics["APY"],
                 metrics["CW"], metrics["ASR"], 100 * metrics["MDD"], len(result.trades),
                 run.seconds)
        return run

    def _agent_runs(self, model: str, algo: str, seed: int,
                    states: dict[str, pd.DataFrame]) -> list[TradingRun]:
        """Train one agent per ticker on its states, then trade the test period."""
        from storm_bt.trading.states import standardise
        from strategies.trading import RLPolicy

        runs = []
        rl_start, rl_end = self.rl_range
        test_start, test_end = self.split.test
        for ticker in self.config.tickers:
            t0 = time.perf_counter()
            frame = standardise(states[ticker], rl_start, rl_end)
            x, prices = _env_arrays(frame, self.panel, ticker, rl_start, rl_end)
            agent: TrainedAgent = train_agent(x, prices, self.config.agent(algo, seed),
                                              cash=self.config.cash, cost=self.config.cost)
            policy = RLPolicy(agent.model, agent.builder, agent.action_map)
            result = self._backtest(ticker, frame.loc[test_start:test_end], policy)
            runs.append(self._record(model, ticker, seed, result, t0,
                                     train_days=len(prices), state_dim=x.shape[1]))
        return runs

    def _fitted(self, model: str, seed: int):
        """The predictor `model` for `seed`, fitted once on every ticker of the panel."""
        predictor = self.make_predictor(model, seed)
        log.info("%s seed %d: fitting on %d tickers, %s .. %s", model, seed,
                 len(self.data.tickers), *[d.date() for d in self.split.train])
        t0 = time.perf_counter()
        predictor.fit(self.data, self.split)
        self.fit_seconds[(model, seed)] = time.perf_counter() - t0
        self.predictor_configs[model] = predictor.config()
        return predictor

    # ------------------------------------------------------------------ per model
    def run_model(self, model: str, seed: int) -> list[TradingRun]:
        """Every traded ticker for one model and seed (the predictor fitted once)."""
        from storm_bt.trading.states import price_states, storm_states
        from strategies.trading import ThresholdPolicy

        cfg = self.config
        test_start, test_end = self.split.test
        runs = []
        if model == "buy-and-hold":
            for ticker in cfg.tickers:
                t0 = time.perf_counter()
                runs.append(self._record(model, ticker, seed, self._buy_and_hold(ticker), t0))
            return runs
        if model in PREDICTOR_MODELS:
            predictor = self._fitted(model, seed)
            predictions = predictor.predict(self.data, test_start, test_end)
            policy = ThresholdPolicy(cfg.resolved_threshold())
            for ticker in cfg.tickers:
                t0 = time.perf_counter()
                result = self._backtest(ticker, predictions[ticker], policy)
                runs.append(self._record(model, ticker, seed, result, t0))
            return runs
        rl_start = self.rl_range[0]
        if model in PRICE_AGENTS:
            states = {t: price_states(self.data, t, rl_start, test_end) for t in cfg.tickers}
            return self._agent_runs(model, model, seed, states)
        predictor = self._fitted(model, seed)
        t0 = time.perf_counter()
        states = storm_states(predictor, self.data, list(cfg.tickers), rl_start, test_end)
        log.info("%s seed %d: factor states of %d tickers, %d days, width %d, in %.0f s", model,
                 seed, len(cfg.tickers), len(next(iter(states.values()))),
                 next(iter(states.values())).shape[1], time.perf_counter() - t0)
        return self._agent_runs(model, "ppo", seed, states)

    def _buy_and_hold(self, ticker: str):
        from strategies.trading import BuyAndHold

        return self._backtest(ticker, None, BuyAndHold())

    def run(self) -> list[TradingRun]:
        runs: list[TradingRun] = []
        for seed in self.config.seeds:
            for model in self.config.ordered_models():
                _seed_everything(seed)
                t0 = time.perf_counter()
                runs.extend(self.run_model(model, seed))
                self.model_seconds[(model, seed)] = time.perf_counter() - t0
                log.info("%s seed %d: all %d tickers in %.0f s", model, seed,
                         len(self.config.tickers), self.model_seconds[(model, seed)])
        return runs


def _seed_everything(seed: int) -> None:
    import random

    random.seed(seed)
    np.random.seed(seed % 2**32)
    try:
        import torch

        torch.manual_seed(seed)
    except ImportError:  # pragma: no cover - torch is a dependency
        pass


# ---------------------------------------------------------------------- tables
def long_table(runs: list[TradingRun]) -> pd.DataFrame:
    """model, ticker, seed, APY, CW, CR, ASR, MDD, AVO (fractions; one row per run)."""
    return pd.DataFrame([{"model": r.model, "ticker": r.ticker, "seed": r.seed,
                          **{m: r.metrics[m] for m in METRICS}} for r in runs],
                        columns=["model", "ticker", "seed", *METRICS])


def improvement(means: pd.DataFrame, storm: str = "storm",
                baselines: tuple[str, ...] = BASELINES) -> pd.Series:
    """Improvement(%) of `storm` over the best baseline per (ticker, metric) column of
    `means` (rows = models); NaN where STORM or every baseline is missing."""
    base = [m for m in baselines if m in means.index]
    out = pd.Series(np.nan, index=means.columns, name=IMPROVEMENT)
    if storm not in means.index or not base:
        return out
    for col in means.columns:
        metric = col[1] if isinstance(col, tuple) else col
        values = means.loc[base, col].astype(float)
        if metric in LOWER_IS_BETTER:  # a book that never held the stock has no risk to beat
            values = values[values > 0]
        s = float(means.loc[storm, col])
        if values.isna().all() or not np.isfinite(s):
            continue
        best = values.min() if metric in LOWER_IS_BETTER else values.max()
        if best == 0 or not np.isfinite(best):
            continue
        diff = (best - s) if metric in LOWER_IS_BETTER else (s - best)
        out[col] = 100.0 * diff / abs(best)
    return out


#: How a metric is shown in the tables: (scale, decimals, suffix).
DISPLAY = {"APY": (100.0, 2, "%"), "CW": (1.0, 4, ""), "CR": (1.0, 3, ""),
           "ASR": (1.0, 3, ""), "MDD": (100.0, 2, "%"), "AVO": (100.0, 2, "%")}


def _cell(values: pd.Series, metric: str) -> str:
    scale, decimals, suffix = DISPLAY[metric]
    v = values.astype(float).to_numpy() * scale
    v = v[np.isfinite(v)]
    if v.size == 0:
        return "nan"
    text = f"{v.mean():.{decimals}f}"
    if len(values) > 1:
        text += f" ± {v.std(ddof=1) if v.size > 1 else 0.0:.{decimals}f}"
    return text + suffix


def summary_tables(table: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(table 1: ticker x {APY, CW, CR}, table 2: ticker x {ASR, MDD, AVO}, means).

    The display tables hold strings (mean ± std over seeds, in % for APY, MDD, AVO) with a
    last row Improvement(%); `means` is the numeric model x (ticker, metric) frame.
    """
    models = [m for m in ALL_MODELS if m in set(table["model"])]
    tickers = list(dict.fromkeys(table["ticker"]))
    grouped = table.groupby(["model", "ticker"], sort=False)
    means = grouped[list(METRICS)].mean().unstack("ticker")
    means = means.reorder_levels([1, 0], axis=1)
    columns = pd.MultiIndex.from_tuples([(t, m) for t in tickers for m in METRICS],
                                        names=["ticker", "metric"])
    means = means.reindex(index=models, columns=columns)
    imp = improvement(means)
    tables = []
    for metrics in (TABLE_1, TABLE_2):
        cols = [(t, m) for t in tickers for m in metrics]
        rows = {}
        for model in models:
            row = {}
            for t, m in cols:
                vals = table.loc[(table["model"] == model) & (table["ticker"] == t), m]
                row[(t, m)] = _cell(vals, m) if len(vals) else ""
            rows[LABELS[model]] = row
        rows[IMPROVEMENT] = {c: ("n/a" if not np.isfinite(imp[c]) else f"{imp[c]:+.2f}")
                             for c in cols}
        frame = pd.DataFrame.from_dict(rows, orient="index")
        frame.columns = pd.MultiIndex.from_tuples(cols, names=["ticker", "metric"])
        frame.index.name = "model"
        tables.append(frame)
    return tables[0], tables[1], means


def to_markdown(frame: pd.DataFrame) -> str:
    """A (ticker, metric)-column table as Markdown with 'TICKER METRIC' headers."""
    flat = frame.copy()
    flat.columns = [f"{t} {m}" for t, m in frame.columns]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return flat.to_markdown(disable_numparse=True)


def tables_markdown(table: pd.DataFrame) -> str:
    """Both summary tables of a long `table` (see `summary_tables`) as Markdown sections."""
    first, second, _ = summary_tables(table)
    return (f"## APY, CW, CR\n\n{to_markdown(first)}\n\n"
            f"## ASR, MDD, AVO\n\n{to_markdown(second)}\n")
