"""Argument parsing and the error boundary of the command line.

Each subcommand is a module with ``add_arguments(parser)`` and ``run(args) -> int``. A
`StormBtError` (a user-caused error) becomes one line on stderr and exit status 2, with no
traceback.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys
import warnings

from storm_bt.errors import StormBtError
from storm_bt.models.neural.distributed import launched_by_torchrun

#: subcommand -> (module, one-line help)
SUBCOMMANDS = {
    "portfolio": ("storm_bt.backtest.portfolio",
                  "predict next-day returns, optimise a portfolio, backtest it in backtrader"),
    "factors": ("storm_bt.backtest.factors",
                "score models' predictions by IC, ICIR, RankIC, RankICIR over seeds"),
    "trading": ("storm_bt.backtest.trading",
                "single-stock buy/hold/sell: every model per ticker, the paper's trading table"),
}


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line on stderr and exit status 2.

    Flags are never abbreviated: ``factors --model X`` is an error, not ``--models X``.
    """

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str):  # noqa: D401 - argparse's hook
        self.exit(2, f"error: {self.prog}: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="python -m storm_bt.backtest",
        description="storm_bt: backtests of factor models (STORM, baselines) with backtrader.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module, help_text) in SUBCOMMANDS.items():
        mod = importlib.import_module(module)
        p = sub.add_parser(name, help=help_text, description=(mod.__doc__ or help_text).strip(),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        mod.add_arguments(p)
        p.set_defaults(handler=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = getattr(args, "log_level", "INFO")
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    try:
        if launched_by_torchrun():
            level = _join_torchrun(args, level)
        logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                            datefmt="%H:%M:%S", stream=sys.stderr)
        return int(args.handler(args) or 0)
    except StormBtError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


def _join_torchrun(args: argparse.Namespace, level: str) -> str:
    """Join torchrun's process group (DDP training); ranks above 0 log warnings only.

    Every rank runs the whole command (the same data, the same validation choices) and
    trains its shard of each batch; only rank 0 writes checkpoints and run files.
    """
    from storm_bt.models.neural.distributed import init_from_env, is_main_process

    if getattr(args, "jobs", 1) > 1 or getattr(args, "backend", "local") != "local":
        raise StormBtError("under torchrun the ranks train one model together: drop --jobs "
                           "and --backend (grids and DDP do not combine)")
    init_from_env(getattr(args, "device", "auto"))
    return level if is_main_process() else "WARNING"
