"""The paper's single-stock trading table on the Dow 30, with its wall time.

    python benchmarks/bench_trading.py [--preset small|tiny] [--tickers AAPL JPM IBM INTC MSFT]
                                       [--models ...] [--seeds 1] [--epochs N] [--timesteps N]
                                       [--threads N] [--no-tearsheets] [--out DIR]
    python benchmarks/bench_trading.py --combine A/trading.csv B/trading.csv ...
    python benchmarks/bench_trading.py --agents [--algos ppo dqn sac] [--steps 20480 20000 4000]
                                       [--profile sac]

Runs ``python -m storm_bt.backtest trading`` on the developers' Dow 30 file with the paper's
split (train 2008-04-01.., valid 2019-04-01.., test 2021-04-01 .. 2024-03-08): every model
fitted once per seed on all 30 stocks, then buy/hold/sell on each traded stock. The tables
land in DIR-<preset>/trading.md and trading.csv; the log ends with the wall time. Skips
(exit 0) where the data is absent.

Budget: ``small`` with ``--jobs 2`` and the predictors' checkpoints cached took 8.6 min for
1 seed on 2 cores (2026-12-02), ``tiny`` takes minutes; cold, each seed adds its 5 neural
fits (about 25-30 min wall at --jobs 2). With ``tiny`` the models train 1 epoch unless
--epochs says otherwise (a smoke run of the whole pipeline, not a result). The default
seed 1 is the first seed of bench_factors.py, so the model checkpoints it cached (same
data, split, preset and seed) are reused; pass
--retrain for a cold-start time. ``--combine`` prints the two tables (Improvement(%) row
included) over the rows of several trading.csv files, e.g. runs split by model; a (model,
ticker, seed) triple found twice is an error. ``--jobs N`` runs the table's tasks on N
local processes (the command's grid; the files are those of a serial run).

``--agents`` measures the agents alone, where the table's time goes: one agent per
algorithm trained on AAPL's real price states of the paper's train + valid range (3,274
days, 1 thread, the table's settings), for ``--steps`` environment steps each. It prints
wall and CPU seconds, steps per CPU second, the set-up cost (the first agent of a process
pays torch's lazy imports) and the extrapolated CPU seconds of one agent at the ``small``
budget (`storm_bt.trading.rows.TIMESTEPS`); the load average is printed with it, because the
machine may be shared. ``--profile ALGO`` runs that agent under cProfile and prints the 25
costliest calls (cumulative time).
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
    p.add_argument("--threads", help="torch threads per job (default: the command's, cores / "
                                      "jobs; more oversubscribes the cores)")
    p.add_argument("--no-tearsheets", action="store_true")
    p.add_argument("--retrain", action="store_true", help="ignore cached model checkpoints")
    p.add_argument("--out", default="runs/bench-trading")
    p.add_argument("--jobs", default="1", help="tasks at once (local processes)")
    p.add_argument("--fill", choices=["close", "next-open"], default="close")
    p.add_argument("--combine", nargs="+", metavar="CSV", help="merge trading.csv files")
    p.add_argument("--agents", action="store_true", help="time the agents alone (see above)")
    p.add_argument("--algos", nargs="+", default=["ppo", "dqn", "sac"])
    p.add_argument("--steps", nargs="+", type=int, metavar="N",
                   help="environment steps per agent, one per --algos (default: a fifth of the "
                        "small budget: ppo 20480, dqn 20000, sac 4000)")
    p.add_argument("--profile", metavar="ALGO", help="with --agents: cProfile this agent")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if args.combine:
        return combine(args.combine)
    if args.agents:
        return agents(args)
    path = DATA / "dj30_daily.csv.gz"
    if not path.exists():
        log.warning("skipped: %s not found (set STORM_BT_SHARED_DATA)", path)
        return 0
    from storm_bt.backtest.cli import main as cli

    epochs = args.epochs or ("1" if args.preset == "tiny" else None)
    argv = ["trading", "--data", str(path), "--tickers", *args.tickers, "--seeds", *args.seeds,
            "--preset", args.preset, "--jobs", args.jobs,
            "--fill", args.fill,
            "--out", f"{args.out}-{args.preset}", "--log-level", "INFO"]
    if args.threads:
        argv += ["--threads", args.threads]
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


def agents(args: argparse.Namespace) -> int:
    """Train one agent per algorithm on AAPL's price states and time it (module docstring)."""
    path = DATA / "dj30_daily.csv.gz"
    if not path.exists():
        log.warning("skipped: %s not found (set STORM_BT_SHARED_DATA)", path)
        return 0
    import torch

    from storm_bt.data import load_panel
    from storm_bt.features.dataset import build_feature_set
    from storm_bt.trading.agents import AgentConfig, train_agent
    from storm_bt.trading.rows import TIMESTEPS
    from storm_bt.trading.states import price_states, standardise, training_arrays

    torch.set_num_threads(1)
    rl_start, rl_end = "2008-04-01", "2021-03-31"  # the paper's train + valid range
    panel = load_panel(path, ["AAPL", "IBM", "JPM", "MSFT"]).until(rl_end)
    frame = standardise(price_states(build_feature_set(panel), "AAPL", rl_start, rl_end),
                        rl_start, rl_end)
    x, prices = training_arrays(frame, panel, "AAPL", rl_start, rl_end)
    default_steps = {"ppo": 20_480, "dqn": 20_000, "sac": 4_000}
    steps = args.steps or [default_steps[a] for a in args.algos]
    if len(steps) != len(args.algos):
        log.error("give one --steps per --algos")
        return 2

    def timed(algo: str, n: int) -> tuple[float, float]:
        wall, cpu = time.perf_counter(), time.process_time()
        train_agent(x, prices, AgentConfig(algo=algo, timesteps=n, seed=1, threads=1))
        return time.perf_counter() - wall, time.process_time() - cpu

    if args.profile:
        import cProfile
        import pstats

        profile = cProfile.Profile()
        profile.enable()
        timed(args.profile, steps[args.algos.index(args.profile)]
              if args.profile in args.algos else default_steps[args.profile])
        profile.disable()
        pstats.Stats(profile).sort_stats("cumulative").print_stats(25)
        return 0
    log.info("load average before: %s; %d training days, state width %d",
             " ".join(f"{v:.2f}" for v in os.getloadavg()), len(prices), x.shape[1])
    print("| agent | steps | wall s | CPU s | steps / CPU s | set-up CPU s | small budget | "
          "CPU s at the small budget |\n|---|---|---|---|---|---|---|---|")
    for algo, n in zip(args.algos, steps):
        _, setup = timed(algo, 64)  # imports, networks, buffers: paid once per agent
        wall, cpu = timed(algo, n)
        _, setup_again = timed(algo, 64)
        setup = setup_again  # the first call also paid the process's one-off imports
        budget = TIMESTEPS["small"][algo]
        rate = max(cpu - setup, 1e-9) / max(n - 64, 1)
        print(f"| {algo} | {n} | {wall:.1f} | {cpu:.1f} | {n / cpu:.0f} | {setup:.2f} | "
              f"{budget} | {setup + rate * (budget - 64):.0f} |", flush=True)
    log.info("environment step, CPU microseconds per step of one environment: %.1f alone, "
             "%.1f in the agents' 4-environment DummyVecEnv", *env_step_micros(x, prices))
    log.info("load average after: %s", " ".join(f"{v:.2f}" for v in os.getloadavg()))
    return 0


def env_step_micros(states, prices, steps: int = 20_000) -> tuple[float, float]:
    """CPU microseconds per step of `TradingEnv` alone and inside the PPO agents' vectorised,
    wrapped environments (random actions)."""
    import numpy as np
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv

    from storm_bt.trading.agents import AgentConfig, make_env
    from storm_bt.trading.env import TradingEnv

    actions = np.random.default_rng(0).integers(0, 3, size=(steps, 4))
    env = TradingEnv(states, prices)
    env.reset(seed=1)
    cpu = time.process_time()
    for a in actions[:, 0]:
        if env.step(int(a))[2]:
            env.reset()
    alone = (time.process_time() - cpu) / steps * 1e6
    config = AgentConfig(algo="ppo")
    venv = DummyVecEnv([lambda: Monitor(make_env(states, prices, config, 1e5, 1e-4))] * 4)
    venv.seed(1)
    venv.reset()
    cpu = time.process_time()
    for a in actions[: steps // 4]:
        venv.step(a)
    return alone, (time.process_time() - cpu) / steps * 1e6


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
