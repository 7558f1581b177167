"""What every `python -m storm_bt.backtest` subcommand shares: data and split flags, the
run folder, and the run record (config.json: arguments, data fingerprint, package versions).
"""
from __future__ import annotations

import argparse
import datetime as _dt
import importlib.metadata
import logging
import os
import platform
import random
import sys
from pathlib import Path

import numpy as np

from storm_bt.data import EMBEDDED, Panel, load_panel
from storm_bt.dataset import Split, make_split
from storm_bt.errors import StormBtError

log = logging.getLogger("storm_bt")

#: Packages whose versions are recorded with every run.
RECORDED_PACKAGES = ("storm_bt", "numpy", "pandas", "torch", "backtrader", "cvxpy", "clarabel",
                     "osqp", "scikit-learn", "lightgbm", "quantstats", "skfolio",
                     "stable-baselines3", "gymnasium")


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """--data, --tickers and the four split-date flags."""
    g = parser.add_argument_group("data")
    g.add_argument("--data", default=EMBEDDED, metavar="PATH",
                   help="price data: 'embedded' (skfolio's 20-stock S&P 500 sample, the default), "
                        "a long CSV/CSV.gz/Parquet file (date,ticker,open,high,low,close,adj_close,volume) "
                        "or a folder of Yahoo Finance CSVs (one per ticker)")
    g.add_argument("--tickers", nargs="+", metavar="TICKER",
                   help="use only these tickers (default: all in the data)")
    g.add_argument("--train-start", metavar="DATE",
                   help="first training date (default 2008-04-01 where the data covers the paper's "
                        "dates, else 2008-01-01)")
    g.add_argument("--valid-start", metavar="DATE",
                   help="first validation date; training ends the day before (default 2019-04-01, "
                        "embedded: 2018-01-01)")
    g.add_argument("--test-start", metavar="DATE",
                   help="first test (backtest) date; validation ends the day before (default "
                        "2021-04-01, embedded: 2020-01-01)")
    g.add_argument("--test-end", metavar="DATE", help="last test date (default: the data's last date)")


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """--seed, --out, --log-level."""
    g = parser.add_argument_group("run")
    g.add_argument("--seed", type=int, default=1337, help="random seed (default 1337)")
    g.add_argument("--out", metavar="DIR",
                   help="output folder (default runs/<subcommand>-<timestamp>); created if absent")
    g.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                   help="logging level (default INFO)")


def load_data(args: argparse.Namespace, min_train_days: int = 252) -> tuple[Panel, Split]:
    """The panel (restricted to --tickers) and the validated split."""
    panel = load_panel(args.data, args.tickers)
    if len(panel.tickers) < 2:
        raise StormBtError(f"{panel.source}: need at least 2 tickers, got {len(panel.tickers)}")
    split = make_split(panel.dates, args.train_start, args.valid_start, args.test_start,
                       args.test_end, min_train_days=min_train_days)
    return panel, split


def seed_everything(seed: int) -> None:
    """Seed python, numpy and (if loaded) torch."""
    random.seed(seed)
    np.random.seed(seed)
    if "torch" in sys.modules:
        import torch

        torch.manual_seed(seed)


def run_folder(args: argparse.Namespace, command: str) -> Path:
    """The run's output folder, created and checked writable."""
    from reports.io import ensure_writable_dir

    out = args.out or os.path.join("runs", f"{command}-{_dt.datetime.now():%Y%m%d-%H%M%S}")
    return ensure_writable_dir(Path(out))


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in RECORDED_PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def run_record(args: argparse.Namespace, command: str, panel: Panel, split: Split,
               **extra) -> dict:
    """All that is needed to rerun: command line, arguments, data fingerprint, versions."""
    arguments = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                 if k != "handler"}
    return {
        "command": command,
        "argv": sys.argv[1:],
        "arguments": arguments,
        "data": panel.describe(),
        "split": split.as_dict(),
        "versions": package_versions(),
        "created": _dt.datetime.now().isoformat(timespec="seconds"),
        **extra,
    }
