"""Single-stock trading: every model buys, holds or sells each --tickers stock on the test period.

For each seed, the predictors are fitted once on the whole universe of --data (or
--universe), then each traded stock is run through backtrader (orders at the decision
day's adjusted close, or with --fill next-open at the next day's adjusted open; integer
shares, all-in / all-out, --cost-bps commission):

    buy-and-hold                         buy on the first test day
    lightgbm, lstm, transformer          threshold on the predicted next-day return
    dqn, sac, ppo                        RL agents on the stock's price features
    storm, storm-ts, storm-cs            PPO on the STORM model's factor state (the paper's
                                         STORM; storm-ts = STORM-w/o-CS, storm-cs = w/o-TS)

Agents train on the train + valid range in a gymnasium environment with the same
accounting (see storm_bt.trading). Metrics: APY = (V_N/V_0)^(252/N) - 1, CW = V_N/V_0,
CR = APY/MDD, ASR = annualised Sharpe of daily returns, MDD from the initial value,
AVO = annualised volatility of daily returns; mean (± std) over --seeds.

The flags become a `storm_bt.experiments.trading_table.TradingTableConfig`;
`run_trading_table` does the work, as a grid of independent tasks (--jobs N local
processes, or --backend ray); this module writes the files.

Outputs in --out: trading.csv (model,ticker,seed,APY,CW,CR,ASR,MDD,AVO; fractions),
trading.md (the two tables with the Improvement(%) row), equity.csv (model, ticker, seed,
date, value, action), tearsheet_<TICKER>_<model>.html (first seed; benchmark: the stock
itself) and config.json (rerun it with --config).
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

from storm_bt.backtest import common
from storm_bt.experiments.trading_table import TradingTableConfig, TradingTableResult
from storm_bt.trading.account import FILLS
from storm_bt.trading.rows import LABELS, PAPER_TICKERS, TABLE_MODELS, TIMESTEPS

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    common.add_data_arguments(parser)
    for action in parser._actions:  # the shared --tickers means the traded stocks here
        if action.dest == "tickers":
            action.help = (f"the stocks to trade (default: those of {' '.join(PAPER_TICKERS)} "
                           "in the data); the models are fitted on the whole --universe")
    common.add_model_arguments(parser, single_model=False)
    g = parser.add_argument_group("trading")
    g.add_argument("--universe", nargs="+", metavar="TICKER",
                   help="the tickers the predictors are fitted on (default: all in the data; "
                        "the traded --tickers are always included)")
    g.add_argument("--models", nargs="+", default=list(TABLE_MODELS), metavar="MODEL",
                   help=f"rows of the table (default: all of {' '.join(TABLE_MODELS)})")
    g.add_argument("--timesteps", type=int, metavar="N",
                   help="environment steps per RL agent (default per --preset: " + "; ".join(
                       f"{p}: " + ", ".join(f"{a} {n}" for a, n in t.items())
                       for p, t in TIMESTEPS.items()) + ")")
    g.add_argument("--cost-bps", type=float, default=1.0, metavar="BPS",
                   help="commission in basis points of traded value (default 1, the paper's)")
    g.add_argument("--cash", type=float, default=1e5, help="initial cash (default 1e5)")
    g.add_argument("--threshold", type=float, metavar="S",
                   help="threshold policy: buy if the predicted return > S, sell if < -S "
                        "(default: the cost, --cost-bps / 1e4)")
    g.add_argument("--with-position", action="store_true",
                   help="agents also see their position flag (STORM_SPEC D23; default: "
                        "position-blind, as the official code)")
    g.add_argument("--fill", choices=FILLS, default="close",
                   help="where the test trades fill: close = the decision day's close (the "
                        "paper's market-on-close, default), next-open = the next day's open; "
                        "the agents train with same-close accounting either way")
    g.add_argument("--no-tearsheets", action="store_true",
                   help="skip the quantstats tear sheets (a few seconds each)")
    common.add_grid_arguments(parser)
    common.add_run_arguments(parser, seeds=True)


def config_from_args(args: argparse.Namespace) -> TradingTableConfig:
    """The run's config: from --config FILE, else from the flags (validated here)."""
    if args.config:
        return common.config_from_file(TradingTableConfig, args.config, "trading")
    return TradingTableConfig(
        data=common.data_config(args),
        universe=tuple(args.universe) if args.universe else None,
        models=tuple(args.models), seeds=common.seeds(args),
        model_settings=common.model_settings(args), timesteps=args.timesteps, cash=args.cash,
        cost_bps=args.cost_bps, threshold=args.threshold, with_position=args.with_position,
        fill=args.fill)


def markdown(result: TradingTableResult) -> str:
    """trading.md: a line on the run, then both tables (`reports.tables.trading_markdown`)."""
    from reports.tables import trading_markdown

    config = result.config
    test_start, test_end = result.split.test
    fill = "close" if config.fill == "close" else "next open"
    head = (f"Single-stock trading, test period {test_start.date()} .. {test_end.date()}, "
            f"fills at the {fill}, cost {config.cost_bps:g} bp, cash {config.cash:g}, "
            f"seeds {' '.join(map(str, config.seeds))}, "
            f"preset {config.model_settings.preset}; mean ± std over seeds; APY, MDD, AVO in %; "
            f"Improvement(%) = STORM vs the best baseline (positive = STORM better)")
    return f"{head}\n\n{trading_markdown(result.table)}"


def write_outputs(result: TradingTableResult, out: Path, tearsheets: bool = True) -> str:
    """Every output file of a trading run, staged: all appear together, or none. Returns
    the Markdown of trading.md."""
    from reports import (atomic_write_csv, atomic_write_json, atomic_write_text,
                         staged_outputs, write_tearsheet)
    from storm_bt.experiments.record import run_record

    text = markdown(result)
    test_start, test_end = result.split.test
    with staged_outputs(out) as stage:
        atomic_write_csv(result.table, stage / "trading.csv", index=False)
        atomic_write_csv(result.equity(), stage / "equity.csv", index=False)
        atomic_write_text(stage / "trading.md", text)
        if tearsheets:
            adj = result.panel.field("adj_close").loc[test_start:test_end]
            first_seed = result.config.seeds[0]
            for r in (r for r in result.runs if r.seed == first_seed):
                stock = adj[r.ticker].pct_change().fillna(0.0).rename(f"{r.ticker} (hold)")
                write_tearsheet(r.result.returns.rename(LABELS[r.model]), stock,
                                stage / f"tearsheet_{r.ticker}_{r.model}.html",
                                title=f"storm_bt trading: {LABELS[r.model]} on {r.ticker}")
        config = result.config
        atomic_write_json(run_record(
            "trading", config, result.panel, result.split, traded=list(result.traded),
            resolved={"threshold": config.resolved_threshold(), "cost": config.cost,
                      "timesteps": config.agent_timesteps()},
            models=result.predictor_configs,
            fit_seconds={k: round(v, 1) for k, v in result.fit_seconds.items()},
            model_seconds={k: round(v, 1) for k, v in result.model_seconds.items()},
            seconds=round(result.seconds, 1)), stage / "config.json")
    return text


def run(args: argparse.Namespace) -> int:
    from storm_bt.experiments.trading_table import run_trading_table

    config = config_from_args(args)
    out = common.run_folder(args, "trading")
    common.check_cache_dir(args)
    result = run_trading_table(config, common.grid_settings(args))
    if not common.writes_outputs():
        return 0
    text = write_outputs(result, out, tearsheets=not args.no_tearsheets)
    print(text)
    log.info("wrote %s (%.0f s)", out, result.seconds)
    return 0
