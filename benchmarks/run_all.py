"""Run the benchmark scripts one after another (``make bench``) and log their wall times.

    python benchmarks/run_all.py [--full] [--only NAME ...]

The default set is the fast one (features, backtest, optimizer, training per epoch, STORM
on a tiny budget for factors and trading). ``--full`` adds the long runs whose figures go
into the issue notes: factor quality of every model over 3 seeds on the Dow 30 and the
trading table with the ``small`` preset (hours on 2 cores). Each script skips itself (exit 0)
where the developers' real data is absent.
"""
from __future__ import annotations

import argparse
import logging
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

QUICK = {
    "features": ["bench_features.py", "--no-sp500"],
    "backtest": ["bench_backtest.py"],
    "optimizer": ["bench_optimizer.py"],
    "training": ["bench_training.py", "--models", "storm", "--steps", "5"],
    "factors-tiny": ["bench_factors.py", "--models", "lightgbm", "storm", "--preset", "tiny",
                     "--seeds", "1", "--out", "runs/bench-factors-tiny"],
    "trading-tiny": ["bench_trading.py", "--preset", "tiny"],
}
FULL = {
    "factors-dj30": ["bench_factors.py", "--universe", "dj30"],
    "trading-small": ["bench_trading.py", "--preset", "small"],
}

log = logging.getLogger("run_all")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--full", action="store_true", help="also run the long benchmarks")
    p.add_argument("--only", nargs="+", metavar="NAME", help="run only these benchmarks")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    plan = {**QUICK, **(FULL if args.full else {})}
    if args.only:
        unknown = sorted(set(args.only) - set(plan) - set(FULL))
        if unknown:
            p.error(f"unknown benchmark {unknown[0]!r}; choose from {', '.join({**QUICK, **FULL})}")
        plan = {name: cmd for name, cmd in {**QUICK, **FULL}.items() if name in args.only}
    failed = []
    for name, (script, *flags) in plan.items():
        if not (HERE / script).exists():
            log.warning("%s: %s is missing, skipped", name, script)
            continue
        started = time.perf_counter()
        code = subprocess.call([sys.executable, str(HERE / script), *flags])
        log.info("%s: exit %d after %.1f s", name, code, time.perf_counter() - started)
        if code:
            failed.append(name)
    if failed:
        log.error("failed: %s", ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
