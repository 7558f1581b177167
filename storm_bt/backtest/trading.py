"""Single-stock trading: every model buys, holds or sells each --tickers stock on the test period.

For each seed, the predictors are fitted once on the whole universe of --data (or
--universe), then each traded stock is run through backtrader (orders at the decision
day's adjusted close, integer shares, all-in / all-out, --cost-bps commission):

    buy-and-hold                         buy on the first test day
    lightgbm, lstm, transformer          threshold on the predicted next-day return
    dqn, sac, ppo                        RL agents on the stock's price features
    storm, storm-ts, storm-cs            PPO on the STORM model's factor state (the paper's
                                         STORM; storm-ts = STORM-w/o-CS, storm-cs = w/o-TS)

Agents train on the train + valid range in a gymnasium environment with the same
accounting (see storm_bt.trading). Metrics: APY = (V_N/V_0)^(252/N) - 1, CW = V_N/V_0,
CR = APY/MDD, ASR = annualised Sharpe of daily returns, MDD from the initial value,
AVO = annualised volatility of daily returns; mean (± std) over --seeds.

Outputs in --out: trading.csv (model,ticker,seed,APY,CW,CR,ASR,MDD,AVO; fractions),
trading.md (the two tables with the Improvement(%) row), equity.csv (model, ticker, seed,
date, value, action), tearsheet_<TICKER>_<model>.html (first seed; benchmark: the stock
itself) and config.json.
"""
from __future__ import annotations

import argparse
import logging
import time

import pandas as pd

from storm_bt.backtest import common
from storm_bt.backtest.model_args import add_model_arguments, predictor_kwargs
from storm_bt.errors import StormBtError
from storm_bt.trading.table import ALL_MODELS, PAPER_TICKERS, TIMESTEPS

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    common.add_data_arguments(parser)
    for action in parser._actions:  # the shared --tickers means the traded stocks here
        if action.dest == "tickers":
            action.help = (f"the stocks to trade (default: those of {' '.join(PAPER_TICKERS)} "
                           "in the data); the models are fitted on the whole --universe")
    add_model_arguments(parser)
    for action in parser._actions:  # one model per run does not apply: --models below
        if action.dest == "model":
            action.help = argparse.SUPPRESS
    g = parser.add_argument_group("trading")
    g.add_argument("--universe", nargs="+", metavar="TICKER",
                   help="the tickers the predictors are fitted on (default: all in the data; "
                        "the traded --tickers are always included)")
    g.add_argument("--models", nargs="+", default=list(ALL_MODELS), metavar="MODEL",
                   help=f"rows of the table (default: all of {' '.join(ALL_MODELS)})")
    g.add_argument("--seeds", nargs="+", type=int, metavar="SEED",
                   help="one run of every model per seed (default: --seed alone)")
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
    g.add_argument("--no-tearsheets", action="store_true",
                   help="skip the quantstats tear sheets (a few seconds each)")
    common.add_run_arguments(parser)


def _load(args: argparse.Namespace):
    """(panel of the universe cut at the test end, split, traded tickers)."""
    from storm_bt.data import load_panel
    from storm_bt.dataset import make_split

    panel = load_panel(args.data, None)
    tickers = list(dict.fromkeys(args.tickers)) if args.tickers else \
        [t for t in PAPER_TICKERS if t in panel.tickers]
    if not tickers:
        raise StormBtError(f"{panel.source}: none of the paper's tickers "
                           f"{' '.join(PAPER_TICKERS)} is in the data; pass --tickers")
    panel.select(tickers)  # unknown traded tickers fail here, naming them
    if args.universe:  # in the data's order, so the model checkpoints match other runs
        panel.select(args.universe)  # unknown tickers fail here, naming them
        wanted = {*args.universe, *tickers}
        panel = panel.select([t for t in panel.tickers if t in wanted])
    if len(panel.tickers) < 2:
        raise StormBtError(f"{panel.source}: the models need at least 2 tickers in the "
                           f"universe, got {len(panel.tickers)}")
    split = make_split(panel.dates, args.train_start, args.valid_start, args.test_start,
                       args.test_end)
    return panel.until(split.test_end), split, tickers


def run(args: argparse.Namespace) -> int:
    from reports import (atomic_write_csv, atomic_write_json, atomic_write_text,
                         staged_outputs, write_tearsheet)
    from storm_bt.dataset import build_feature_set
    from storm_bt.models import make_predictor
    from storm_bt.trading.table import (LABELS, TableConfig, TradingTable, check_tickers,
                                        long_table, tables_markdown)

    started = time.perf_counter()
    seeds = args.seeds or [args.seed]
    panel, split, tickers = _load(args)
    config = TableConfig(models=tuple(dict.fromkeys(args.models)), tickers=tuple(tickers),
                         seeds=tuple(seeds), preset=args.preset, timesteps=args.timesteps,
                         cash=args.cash, cost_bps=args.cost_bps, threshold=args.threshold,
                         with_position=args.with_position)
    check_tickers(panel, split, config.tickers)
    out = common.run_folder(args, "trading")

    def factory(model: str, seed: int):
        args.seed = seed
        return make_predictor(model, **predictor_kwargs(args, model))

    log.info("features for %d tickers x %d days", len(panel.tickers), len(panel.dates))
    data = build_feature_set(panel)
    table = TradingTable(panel, data, split, config, factory)
    runs = table.run()

    frame = long_table(runs)
    test_start, test_end = split.test
    head = (f"Single-stock trading, test period {test_start.date()} .. {test_end.date()}, "
            f"cost {args.cost_bps:g} bp, cash {args.cash:g}, seeds {' '.join(map(str, seeds))}, "
            f"preset {args.preset}; mean ± std over seeds; APY, MDD, AVO in %; "
            f"Improvement(%) = STORM vs the best baseline (positive = STORM better)")
    markdown = f"{head}\n\n{tables_markdown(frame)}"
    equity = pd.concat([
        pd.DataFrame({"model": r.model, "ticker": r.ticker, "seed": r.seed,
                      "date": r.result.equity.index.strftime("%Y-%m-%d"),
                      "value": r.result.equity.to_numpy(),
                      "action": r.result.actions.to_numpy()}) for r in runs])
    with staged_outputs(out) as stage:  # all files appear together, or none
        atomic_write_csv(frame, stage / "trading.csv", index=False)
        atomic_write_csv(equity, stage / "equity.csv", index=False)
        atomic_write_text(stage / "trading.md", markdown)
        if not args.no_tearsheets:
            adj = panel.field("adj_close").loc[test_start:test_end]
            for r in runs:
                if r.seed != seeds[0]:
                    continue
                stock = adj[r.ticker].pct_change().fillna(0.0).rename(f"{r.ticker} (hold)")
                write_tearsheet(r.result.returns.rename(LABELS[r.model]), stock,
                                stage / f"tearsheet_{r.ticker}_{r.model}.html",
                                title=f"storm_bt trading: {LABELS[r.model]} on {r.ticker}")
        elapsed = time.perf_counter() - started
        atomic_write_json(common.run_record(
            args, "trading", panel, split, traded=tickers, table=config.as_dict(),
            models=table.predictor_configs,
            fit_seconds={f"{m}/{s}": round(v, 1) for (m, s), v in table.fit_seconds.items()},
            model_seconds={f"{m}/{s}": round(v, 1) for (m, s), v in table.model_seconds.items()},
            seconds=round(elapsed, 1)), stage / "config.json")
    print(markdown)
    log.info("wrote %s (%.0f s)", out, elapsed)
    return 0
