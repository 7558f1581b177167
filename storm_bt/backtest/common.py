"""What every `python -m storm_bt.backtest` subcommand shares: the data, model and run flags,
their translation into config objects, and the run folder.

Flags become configs here and nowhere else; a config validates itself when it is built
(`storm_bt.experiments`), so a bad value fails before any data is read. This module imports
no model, optimizer or backtest code, so ``--help`` stays fast.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
from pathlib import Path

from storm_bt.data.loaders import EMBEDDED
from storm_bt.errors import StormBtError
from storm_bt.experiments.data import DataConfig
from storm_bt.models.registry import (DEFAULT_MODEL, DEFAULT_PRESET, MODEL_NAMES, PRESET_NAMES,
                                      ModelSettings)
from storm_bt.runtime import DEVICES

DEFAULT_CACHE_DIR = ".cache/storm_bt/checkpoints"


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """--data, --tickers and the four split-date flags."""
    g = parser.add_argument_group("data")
    g.add_argument("--data", default=EMBEDDED, metavar="PATH",
                   help="price data: 'embedded' (skfolio's 20-stock S&P 500 sample, the default), "
                        "a long CSV/CSV.gz/Parquet file (date,ticker,open,high,low,close,adj_close,volume), "
                        "a wide one (date and one adjusted-close column per ticker) "
                        "or a folder of Yahoo Finance CSVs (one per ticker)")
    g.add_argument("--tickers", nargs="+", metavar="TICKER",
                   help="use only these tickers (default: all in the data)")
    g.add_argument("--train-start", metavar="DATE",
                   help="first training date, YYYY-MM-DD (default: the paper's 2008-04-01 where "
                        "the data covers the paper's split, the embedded sample's 2008-01-01, "
                        "else chosen from the data)")
    g.add_argument("--valid-start", metavar="DATE",
                   help="first validation date; training ends the day before (default 2019-04-01, "
                        "embedded: 2018-01-01, else 2 years before the test period)")
    g.add_argument("--test-start", metavar="DATE",
                   help="first test (backtest) date; validation ends the day before (default "
                        "2021-04-01, embedded: 2020-01-01, else the data's last 3 years)")
    g.add_argument("--test-end", metavar="DATE", help="last test date (default: the data's last date)")
    g.add_argument("--membership", metavar="FILE",
                   help="point-in-time universe: CSV ticker,start_date,end_date (empty end: "
                        "still a member); a stock is traded, scored and trained on at t only "
                        "while it is a member at t")


def add_model_arguments(parser: argparse.ArgumentParser, single_model: bool = True) -> None:
    """--model (when the command runs one model), --preset, --epochs, --device, --threads,
    --cache-dir, --retrain, --set."""
    g = parser.add_argument_group("model")
    if single_model:
        g.add_argument("--model", default=DEFAULT_MODEL, choices=MODEL_NAMES,
                       help=f"the predictor of next-day returns (default {DEFAULT_MODEL})")
    g.add_argument("--preset", choices=PRESET_NAMES, default=DEFAULT_PRESET,
                   help=f"size preset of the neural models (default {DEFAULT_PRESET})")
    g.add_argument("--epochs", type=int, metavar="N", help="override the preset's training epochs")
    g.add_argument("--device", default="auto", choices=DEVICES,
                   help="torch device of the neural models: auto uses CUDA when present "
                        "(default auto; trading's RL agents always run on the CPU, where "
                        "their small networks are fastest)")
    g.add_argument("--threads", type=int, metavar="N",
                   help="CPU threads per model fit, LightGBM included (default 2, or fewer so "
                        "that --jobs x threads stays within the cores)")
    g.add_argument("--cache-dir", default=DEFAULT_CACHE_DIR, metavar="DIR",
                   help="checkpoint cache; a matching checkpoint is reused instead of retraining")
    g.add_argument("--retrain", action="store_true",
                   help="train even when a matching checkpoint is cached")
    g.add_argument("--set", dest="overrides", action="append", default=[],
                   metavar="[MODEL:]KEY=VALUE",
                   help="change a model or training setting of the preset, for every neural "
                        "model or for MODEL alone (repeatable), e.g. --set stocks_per_step=128 "
                        "--set storm:ts_patch=8; recorded in config.json and the checkpoint key")


def add_run_arguments(parser: argparse.ArgumentParser, seeds: bool = False) -> None:
    """--seed (or --seeds), --out, --overwrite, --config, --log-level."""
    g = parser.add_argument_group("run")
    g.add_argument("--seed", type=int, default=1337, help="random seed (default 1337)")
    if seeds:
        g.add_argument("--seeds", nargs="+", type=int, metavar="SEED",
                       help="one run per seed (default: --seed alone)")
    g.add_argument("--out", metavar="DIR",
                   help="output folder (default runs/<command>-<timestamp>); created if absent")
    g.add_argument("--overwrite", action="store_true",
                   help="allow an --out folder that already holds files (an earlier run's outputs "
                        "there are replaced, those this run does not write removed; other "
                        "files stay)")
    g.add_argument("--config", metavar="FILE",
                   help="rerun the config recorded in a run's config.json (other flags but "
                        "--out, --overwrite and --log-level are ignored)")
    g.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                   help="logging level (default INFO)")


def add_refit_arguments(parser: argparse.ArgumentParser) -> None:
    """--refit-every, --train-window: walk-forward refits through the test period."""
    g = parser.add_argument_group("walk-forward")
    g.add_argument("--refit-every", type=int, metavar="N",
                   help="refit the model every N test days, each on the data before its own "
                        "validation block (default: fit once, the paper's protocol)")
    g.add_argument("--train-window", type=int, metavar="DAYS",
                   help="with --refit-every: train on the last DAYS trading days (rolling) "
                        "instead of everything since --train-start (expanding)")


def add_grid_arguments(parser: argparse.ArgumentParser) -> None:
    """--jobs, --backend, --ray-address: how the run's independent tasks are spread."""
    from storm_bt.experiments.grid import BACKENDS

    g = parser.add_argument_group("grid")
    g.add_argument("--jobs", type=int, default=1, metavar="N",
                   help="tasks run at once: local worker processes, or Ray tasks (default 1)")
    g.add_argument("--backend", choices=BACKENDS, default="local",
                   help="local processes (joblib/loky, default) or ray (pip install '.[ray]')")
    g.add_argument("--ray-address", metavar="ADDRESS",
                   help="an existing Ray cluster, e.g. auto or ray://head:10001 (default: start "
                        "a local Ray with --jobs CPUs)")


def grid_settings(args: argparse.Namespace):
    from storm_bt.experiments.grid import GridSettings

    return GridSettings(backend=getattr(args, "backend", "local"), jobs=getattr(args, "jobs", 1),
                        address=getattr(args, "ray_address", None))


def data_config(args: argparse.Namespace) -> DataConfig:
    return DataConfig(data=str(args.data), tickers=tuple(args.tickers) if args.tickers else None,
                      train_start=args.train_start, valid_start=args.valid_start,
                      test_start=args.test_start, test_end=args.test_end,
                      membership=getattr(args, "membership", None))


def model_settings(args: argparse.Namespace) -> ModelSettings:
    """The model flags; threads default to 2, or fewer so that jobs x threads fits the cores."""
    from storm_bt.experiments.grid import GridSettings, plan_threads
    from storm_bt.runtime import available_cores

    jobs = GridSettings(jobs=getattr(args, "jobs", 1)).jobs   # its check, also for a single book
    threads = args.threads
    if threads is None:
        threads = max(1, min(2, available_cores() // max(1, jobs)))
    if args.threads is not None or jobs > 1:
        plan_threads(jobs, threads)
    if args.device == "cuda" and getattr(args, "backend", "local") == "local":
        from storm_bt.runtime import resolve_device

        resolve_device("cuda")   # no GPU here: refused now, not after the data is read
    return ModelSettings(preset=args.preset, epochs=args.epochs, device=args.device,
                         threads=threads, cache_dir=args.cache_dir, retrain=args.retrain,
                         overrides=tuple(args.overrides))


def check_cache_dir(args: argparse.Namespace) -> None:
    """Refuse a --cache-dir that cannot be created or written, before any data is read or
    model trained (the check leaves no folder behind). Only rank 0 checks under torchrun,
    as for --out."""
    from reports.io import check_writable_dir

    if args.cache_dir and writes_outputs():
        check_writable_dir(args.cache_dir, hint="choose another --cache-dir")


def seeds(args: argparse.Namespace) -> tuple[int, ...]:
    """--seeds as given, else --seed alone; checked, so a refusal names the flag given."""
    from storm_bt.runtime import checked_seeds

    if getattr(args, "seeds", None):
        return checked_seeds(args.seeds, "--seeds")
    return checked_seeds([args.seed], "--seed")


def config_from_file(config_cls, path: str, command: str):
    """``config_cls`` rebuilt from the run record at ``path`` (--config); a refusal names
    the file."""
    try:
        return config_cls.from_dict(recorded_config(path, command))
    except StormBtError as error:
        text = str(error)
        raise StormBtError(text if text.startswith(f"--config {path}") else
                           f"--config {path}: {text}") from None


def recorded_config(path: str, command: str) -> dict:
    """The ``config`` object of a run's config.json, checked to belong to ``command``."""
    try:
        record = json.loads(Path(path).read_text())
    except OSError as exc:
        raise StormBtError(f"--config {path}: cannot read it ({(exc.strerror or exc)})") from None
    except json.JSONDecodeError as exc:
        raise StormBtError(f"--config {path}: not JSON (line {exc.lineno}: {exc.msg})") from None
    if not isinstance(record, dict) or "config" not in record:
        raise StormBtError(f"--config {path}: no 'config' object; give the config.json of a run")
    if record.get("command") != command:
        raise StormBtError(f"--config {path}: a {record.get('command')!r} run, not {command!r}")
    return record["config"]


def writes_outputs() -> bool:
    """False on torchrun ranks above 0: they train with rank 0, which alone writes files."""
    from storm_bt.models.neural.distributed import is_main_process

    return is_main_process()


def run_folder(args: argparse.Namespace, command: str) -> Path:
    """The run's output folder, created and checked writable; an existing folder that holds
    files is refused unless --overwrite.

    The folder is only checked here (a folder this creates for the check is removed again);
    the run's files are staged and moved into it when all are written, so a failed run
    leaves no folder behind. Under torchrun only rank 0 writes, so only rank 0 checks: the
    other ranks' write probes would otherwise race its emptiness check.
    """
    from reports.io import WRITE_PROBE_PREFIX, check_writable_dir

    out = Path(args.out or os.path.join("runs", f"{command}-{_dt.datetime.now():%Y%m%d-%H%M%S}"))
    if not writes_outputs():
        return out
    held = out.is_dir() and any(not entry.name.startswith(WRITE_PROBE_PREFIX)
                                for entry in out.iterdir())
    if held and not getattr(args, "overwrite", False):
        raise StormBtError(f"--out {out} already holds files; choose another --out or pass --overwrite")
    return check_writable_dir(out)
