"""Is a run the same in every process? Fresh processes, counted by outcome.

Two probes, each run in ``--processes`` fresh Python processes one after another (alone:
a process uses ``--threads`` threads), once as storm_bt runs now and once with
`storm_bt.runtime.prepare_vector_maths` skipped (``--without-prepare``, the code before it):

- ``first-sqrt``: the process's first vector-maths call, sqrt of 32,768 fixed numbers on
  ``--threads`` threads, against a second call in the same process (MKL's VML initialises
  on its first call; `storm_bt.runtime`). An outcome is "same" or the count of values that
  differ and their largest relative difference.
- ``steps``: ``--steps`` optimiser steps of STORM ``small`` on the Dow 30 (seeded, the
  benchmarks' batches), then a checksum of every weight. Needs the shared data.

Prints, per probe and mode, each distinct outcome with the number of processes that gave it:
one outcome per mode is a reproducible run. A command, not a test: it takes minutes.

    python benchmarks/bench_determinism.py --probe first-sqrt --processes 40
    python benchmarks/bench_determinism.py --probe steps --processes 10 --steps 15
"""
from __future__ import annotations

import argparse
import collections
import logging
import subprocess
import sys
from pathlib import Path

log = logging.getLogger("bench_determinism")
HERE = Path(__file__).resolve().parent


def first_sqrt(threads: int) -> str:
    """The first sqrt of the process against a second one: 'same' or what differs."""
    import torch

    torch.set_num_threads(threads)
    a = torch.rand(32768, generator=torch.Generator().manual_seed(0)) * 0.01 + 1e-6
    first, second = a.sqrt(), a.sqrt()
    differ = first != second
    if not bool(differ.any()):
        return "same"
    rel = ((first - second).abs() / second)[differ].max()
    return f"{int(differ.sum())} of {a.numel()} differ, up to {float(rel):.1e} relative"


def storm_steps(threads: int, steps: int) -> str:
    """A checksum of STORM small's weights after ``steps`` seeded optimiser steps (the
    benchmarks' steps, `bench_training.optimiser_steps`)."""
    import torch

    sys.path.insert(0, str(HERE))
    import bench_training as bt
    from storm_bt.runtime import seed_everything

    torch.set_num_threads(threads)
    data, split = bt.paper_data(bt.DEFAULT_DATA, "dj30")
    predictor = bt.predictor_class("storm")(preset="small", device="cpu", num_threads=threads,
                                            cache_dir=None, progress=False)
    cfg, history = predictor.train_config, predictor.history
    seed_everything(1)
    model = predictor.build(data).train()
    for _ in bt.optimiser_steps(model, data, data.sample_ends(*split.train, history), history,
                                cfg, steps):
        pass
    weights = torch.cat([p.detach().flatten() for p in model.parameters()]).double()
    return f"sum {float(weights.sum())!r}, sum of squares {float((weights ** 2).sum())!r}"


def child(args) -> None:
    """One fresh process's outcome, on stdout's last line (torch imported first, as a
    script that imports it before storm_bt would)."""
    import torch  # noqa: F401

    if args.without_prepare:
        import storm_bt.runtime as runtime

        runtime._vector_maths_ready = True          # the code before prepare_vector_maths
    else:
        from storm_bt.runtime import prepare_vector_maths

        prepare_vector_maths()
    out = first_sqrt(args.threads) if args.probe == "first-sqrt" \
        else storm_steps(args.threads, args.steps)
    print(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--probe", choices=["first-sqrt", "steps"], default="first-sqrt")
    parser.add_argument("--processes", type=int, default=40)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--modes", nargs="+", choices=["now", "without-prepare"],
                        default=["now", "without-prepare"])
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--without-prepare", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args)
        return 0
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.probe == "steps":
        sys.path.insert(0, str(HERE))
        import bench_training as bt

        if not Path(bt.DEFAULT_DATA).exists():
            log.info("skipped: %s not found (set STORM_BT_SHARED_DATA)", bt.DEFAULT_DATA)
            return 0
    base = [sys.executable, str(Path(__file__).resolve()), "--child", "--probe", args.probe,
            "--threads", str(args.threads), "--steps", str(args.steps)]
    for mode in args.modes:
        flags = ["--without-prepare"] if mode == "without-prepare" else []
        outcomes: collections.Counter = collections.Counter()
        for _ in range(args.processes):
            done = subprocess.run(base + flags, capture_output=True, text=True, check=True)
            outcomes[done.stdout.strip().splitlines()[-1]] += 1
        log.info("%s, %s, %d processes at %d threads: %d distinct outcome(s)", args.probe,
                 mode, args.processes, args.threads, len(outcomes))
        for outcome, count in outcomes.most_common():
            log.info("  %3d x %s", count, outcome)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
