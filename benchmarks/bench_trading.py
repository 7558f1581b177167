"""The paper's single-stock trading table on the Dow 30, with its wall time.

    python benchmarks/bench_trading.py [--preset small|tiny] [--tickers AAPL JPM IBM INTC MSFT]
                                       [--models ...] [--seeds 1] [--epochs N] [--timesteps N]
                                       [--threads 2] [--no-tearsheets] [--out DIR]
    python benchmarks/bench_trading.py --combine A/trading.csv B/trading.csv ...

Runs ``python -m storm_bt.backtest trading`` on the developers' Dow 30 file with the paper's
split (train 2008-04-01.., valid 2019-04-01.., test 2021-04-01 .. 2024-03-08): every model
fitted once per seed on all 30 stocks, then buy/hold/sell on each traded stock. The tables
land in DIR-<preset>/trading.md and trading.csv; the log ends with the wall time. Skips
(exit 0) where the data is absent.

Budget: ``small`` is meant to finish within an hour on 2 cores, ``tiny`` in minutes; with
``tiny`` the models train 1 epoch unless --epochs says otherwise (a smoke run of the whole
pipeline, not a result). The default seed 1 is the first seed of bench_factors.py, so the
model checkpoints it cached (same data, split, preset and seed) are reused; pass
--retrain for a cold-start time. ``--combine`` prints the two tables (Improvement(%) row
included) over the rows of several trading.csv files, e.g. runs split by model; a (model,
ticker, seed) triple found twice is an error.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

DATA = Path(os.environ.get("STORM_BT_SHARED_DATA",
                           Path(__file__).resolve().parents[2] / "shared" / "data"))
TICKERS = ["AAPL", "JPM", "IBM", "INTC", "MSFT"]

log = logging.getLogger("bench_trading")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", choices=["tiny", "small", "paper"], default="small")
    p.add_argument("--tickers", nargs="+", default=TICKERS)
    p.add_argument("--models", nargs="+", help="a subset of the table's rows (default: all)")
    p.add_argument("--seeds", nargs="+", default=["1"])
    p.add_argument("--epochs", help="override the preset's epochs (default: 1 with tiny)")
    p.add_argument("--timesteps", help="environment steps per RL agent (default: per preset)")
    p.add_argument("--threads", default="2")
    p.add_argument("--no-tearsheets", action="store_true")
    p.add_argument("--retrain", action="store_true", help="ignore cached model checkpoints")
    p.add_argument("--out", default="runs/bench-trading")
    p.add_argument("--combine", nargs="+", metavar="CSV", help="merge trading.csv files")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if args.combine:
        return combine(args.combine)
    path = DATA / "dj30_daily.csv.gz"
    if not path.exists():
        log.warning("skipped: %s not found (set STORM_BT_SHARED_DATA)", path)
        return 0
    from storm_bt.backtest.cli import main as cli

    epochs = args.epochs or ("1" if args.preset == "tiny" else None)
    argv = ["trading", "--data", str(path), "--tickers", *args.tickers, "--seeds", *args.seeds,
            "--preset", args.preset, "--threads", args.threads,
            "--out", f"{args.out}-{args.preset}", "--log-level", "INFO"]
    if args.models:
        argv += ["--models", *args.models]
    if epochs:
        argv += ["--epochs", epochs]
    if args.timesteps:
        argv += ["--timesteps", args.timesteps]
    if args.no_tearsheets:
        argv.append("--no-tearsheets")
    if args.retrain:
        argv.append("--retrain")
    started = time.perf_counter()
    code = cli(argv)
    log.info("trading table, preset %s%s, %d tickers x %s models x %d seeds: %.0f s wall",
             args.preset, f" (epochs {epochs})" if epochs else "", len(args.tickers),
             len(args.models) if args.models else "all", len(args.seeds),
             time.perf_counter() - started)
    return code


def combine(paths: list[str]) -> int:
    import pandas as pd

    from reports.tables import trading_markdown

    table = pd.concat([pd.read_csv(p) for p in paths], ignore_index=True)
    twice = table[table.duplicated(["model", "ticker", "seed"])]
    if len(twice):
        row = twice.iloc[0]
        log.error("%s on %s seed %s appears twice", row["model"], row["ticker"], row["seed"])
        return 1
    print(trading_markdown(table), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
