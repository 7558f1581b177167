"""Time `compute_features` (and `causal_block_scale`) on the shared real-data files.

    python benchmarks/bench_features.py [--data-dir PATH] [--repeat 1] [--no-sp500]
                                        [--scale-sp500]

Times (wall clock and CPU; numpy runs these on one core) the Dow 30 file (6084 days x 30
tickers, OHLCV, F = 152) and the 501-ticker S&P 500 file (features only: about 3.7 GB of
float64 output; `--scale-sp500` also times the scaler on it, about 5.6 GB more). Loading the
data is not timed. A first call pays for the first touch of its fresh output memory; with
`--repeat 2` the minimum shows a call without that cost.
Skips (exit 0, with a message) when the data folder is absent.
"""
from __future__ import annotations

import argparse
import logging
import os
import statistics
import time
from pathlib import Path

DEFAULT_DIR = Path(os.environ.get(
    "STORM_BT_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))

log = logging.getLogger("bench_features")


def timed(fn, repeat: int) -> tuple[list[float], list[float], object]:
    """Wall-clock and CPU seconds of each of `repeat` calls, and the last result. The CPU
    time is the fairer number on a machine shared with other jobs."""
    wall, cpu, result = [], [], None
    for _ in range(repeat):
        result = None                                  # free the previous output first
        started, cpu_started = time.perf_counter(), time.process_time()
        result = fn()
        wall.append(time.perf_counter() - started)
        cpu.append(time.process_time() - cpu_started)
    return wall, cpu, result


def bench(path: Path, repeat: int, scale: bool) -> None:
    from storm_bt.data import load_panel
    from storm_bt.features.alpha158 import compute_features
    from storm_bt.features.scaler import causal_block_scale

    panel = load_panel(path)
    wall, cpu, (values, names) = timed(lambda: compute_features(panel), repeat)
    log.info("%s: compute_features %d dates x %d tickers -> F = %d (%.2f GB): wall median "
             "%.2f s (min %.2f), CPU median %.2f s over %d run(s)", path.name, len(panel.dates),
             len(panel.tickers), len(names), values.nbytes / 1e9, statistics.median(wall),
             min(wall), statistics.median(cpu), repeat)
    if scale:
        wall, cpu, _ = timed(lambda: causal_block_scale(values), repeat)
        log.info("%s: causal_block_scale: wall median %.2f s (min %.2f), CPU median %.2f s "
                 "over %d run(s)", path.name, statistics.median(wall), min(wall),
                 statistics.median(cpu), repeat)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DIR)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--no-sp500", action="store_true", help="time the Dow 30 file only")
    parser.add_argument("--scale-sp500", action="store_true",
                        help="also time the scaler on the S&P 500 features (needs ~10 GB)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("storm_bt").setLevel(logging.WARNING)
    dj30 = args.data_dir / "dj30_daily.csv.gz"
    if not dj30.exists():
        log.info("SKIP bench_features: %s not found (set STORM_BT_SHARED_DATA or --data-dir)",
                 dj30)
        return 0
    bench(dj30, args.repeat, scale=True)
    sp500 = args.data_dir / "sp500_daily.parquet"
    if not args.no_sp500 and sp500.exists():
        bench(sp500, args.repeat, scale=args.scale_sp500)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
