"""Time training (seconds per epoch) and inference of the torch models on the Dow 30.

    python benchmarks/bench_training.py [--data PATH] [--models storm,lstm,transformer,factorvae]
                                        [--models 'storm;storm:ts_patch=16,enc_depth=1']
                                        [--universe dj30|all] [--preset small] [--threads 2]
                                        [--steps 10] [--max-epoch-seconds 240] [--steps-only]
                                        [--stocks-per-step K] [--valid-seconds] [--compile]

Data: the tickers of STORM_SPEC 1.1 that exist in the file (``--universe dj30``, the default),
or every ticker of the file (``--universe all``, e.g. with ``--data`` the S&P 500 Parquet to
see how a model's cost grows with the universe); features for the whole file, training
windows ending 2008-04-01 .. 2019-03-31 (batch 32, drop_last).
For each model: ``--steps`` timed optimiser steps (after one untimed warm-up step) give the
seconds per step (their median, and their mean) and an epoch estimate from the median;
when that estimate is under ``--max-epoch-seconds`` a real epoch (`fit` with epochs=1,
valid RankIC included) is also timed: "epoch s (measured)" is the fit's wall time (with
the data digest of the checkpoint key, the model's build and the loop's set-up), "epoch s
(trainer)" the epoch alone as the training loop logs it (its steps, diagnostics and
validation pass). Inference: `predict` on 2021-04-01 .. the last date, and for STORM also
`factors`. CPU, ``torch.set_num_threads(threads)``. Skips (exit 0) when the data is absent.

The steps use the preset's ``stocks_per_step`` (a random subset of the stocks per step;
``--stocks-per-step`` overrides it, 0 = all stocks). ``--valid-seconds`` also times one
validation pass (every stock, every valid day, what each epoch adds), so that
"epoch s (est)" = steps x s/step + valid s (validation over the preset's ``valid_stocks``).
``--compile`` wraps the model's loss in ``torch.compile`` (inductor) before the steps; the
untimed warm-up step then includes the compilation, reported as "compile s" (the steps
only: the one-epoch fit and inference stay eager).
"rss GB" is the process's peak resident memory so far (the feature build's peak included:
features are computed once per process), "rss now GB" its current resident memory.
"""
from __future__ import annotations

import argparse
import logging
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch

log = logging.getLogger("bench_training")

DEFAULT_DATA = Path(os.environ.get(
    "STORM_BT_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")) \
    / "dj30_daily.csv.gz"
DJ30 = ("AAPL AMGN AXP BA CAT CRM CSCO CVX DIS GS HD HON IBM INTC JNJ JPM KO MCD MMM MRK "
        "MSFT NKE PG TRV UNH V VZ WBA WMT").split()
PREDICTORS = {
    "storm": "storm_bt.models.storm.predictor:StormPredictor",
    "storm-ts": "storm_bt.models.storm.predictor:StormTSPredictor",
    "storm-cs": "storm_bt.models.storm.predictor:StormCSPredictor",
    "lstm": "storm_bt.models.baselines.lstm:LSTMPredictor",
    "transformer": "storm_bt.models.baselines.transformer:TransformerPredictor",
    "factorvae": "storm_bt.models.baselines.factorvae:FactorVAEPredictor",
}


def parse_variant(text: str) -> tuple[str, dict]:
    """``"storm:ts_patch=16,enc_depth=1"`` -> ("storm", {"ts_patch": 16, "enc_depth": 1}):
    a model name with optional model or training settings (values read as Python literals)."""
    import ast

    name, _, rest = text.partition(":")
    overrides = {}
    for item in filter(None, rest.split(",")):
        key, _, value = item.partition("=")
        try:
            overrides[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            overrides[key] = value
    return name, overrides


def load_universe(path: Path, universe: str):
    """The panel of ``path``; with ``universe == "dj30"``, cut to the STORM_SPEC Dow 30
    tickers it holds (28 of the 29 in the developers' file), else every ticker."""
    from storm_bt.data import load_panel

    panel = load_panel(path)
    if universe == "dj30":
        panel = panel.select([t for t in DJ30 if t in panel.tickers])
    return panel


def paper_split(data):
    """STORM_SPEC D13 fixed: train 2008-04-01 .. 2019-03-31, valid 2019-04-01 ..
    2021-03-31, test from 2021-04-01 to the data's last day."""
    import pandas as pd
    from storm_bt.features.dataset import Split

    return Split(pd.Timestamp("2008-04-01"), pd.Timestamp("2019-04-01"),
                 pd.Timestamp("2021-04-01"), data.dates[-1])


def paper_data(path: Path, universe: str):
    """(FeatureSet, Split): the features of `load_universe(path, universe)` and their
    `paper_split`."""
    from storm_bt.features.dataset import build_feature_set

    data = build_feature_set(load_universe(path, universe))
    return data, paper_split(data)


def add_paper_arguments(parser) -> None:
    """The options of the validation-only scripts that fit seeds on `paper_data`: --data,
    --universe, --seeds, --threads (1: two fits side by side on 2 cores) and --preset."""
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--universe", choices=["dj30", "all"], default="dj30")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--preset", default="small")


def predictor_class(name: str):
    import importlib

    module, cls = PREDICTORS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def paper_predictor(args, name: str, seed: int, cache_dir: Path | None = None, **settings):
    """The predictor `name` as the validation-only scripts fit it: ``args.preset``, CPU,
    ``args.threads`` threads, no progress bar, the given seed, checkpoint cache and model or
    training settings."""
    return predictor_class(name)(preset=args.preset, seed=seed, device="cpu",
                                 num_threads=args.threads, cache_dir=cache_dir,
                                 progress=False, **settings)


def peak_rss_gb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20   # KiB on Linux


def rss_now_gb() -> float:
    """The process's current resident memory (VmRSS), GB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 2 ** 20
    return float("nan")


def random_batch(model, data, ends: np.ndarray, history: int, cfg,
                 rng: np.random.Generator):
    """A training batch drawn as the benchmarks draw one: ``cfg.batch_size`` of the window
    ends ``ends`` and, when the preset samples stocks, ``cfg.stocks_per_step`` of them (both
    sorted, in that order from ``rng``), with the universe's cross-section for a model that
    reads it (`storm_bt.models.neural.training.reads_universe`)."""
    from storm_bt.models.neural.batch import make_batch
    from storm_bt.models.neural.training import reads_universe

    n_stocks, k = len(data.tickers), cfg.stocks_per_step
    windows = np.sort(rng.choice(ends, cfg.batch_size, replace=False))
    stocks = np.sort(rng.choice(n_stocks, k, replace=False)) if k and k < n_stocks else None
    return make_batch(data, windows, history, stocks, reads_universe(model))


def optimiser_steps(model, data, ends: np.ndarray, history: int, cfg, n_steps: int):
    """Run ``n_steps`` optimiser steps of ``model`` on `random_batch` draws from
    ``default_rng(0)`` (AdamW, warmup of one step, under `retained_heap` as `train_model`
    steps), yielding after each one: the time between yields is a step, batch assembly
    included."""
    from storm_bt.models.neural.training import make_optimizer, train_step, warmup_linear_schedule
    from storm_bt.runtime import retained_heap

    opt = make_optimizer(model, cfg)
    sched = warmup_linear_schedule(opt, 1, 10 ** 6)
    rng = np.random.default_rng(0)
    with retained_heap():
        for _ in range(n_steps):
            train_step(model, random_batch(model, data, ends, history, cfg, rng), opt, sched,
                       cfg.grad_clip)
            yield


def time_steps(predictor, data, split, n_steps: int, compile_model: bool = False
               ) -> tuple[list[float], int, int, float]:
    """Seconds of ``n_steps`` optimiser steps (batch assembly included), steps/epoch, params
    and the seconds of the untimed first step (with ``compile_model``, the compilation)."""
    cfg, history = predictor.train_config, predictor.history
    ends = data.sample_ends(*split.train, history)
    model = predictor.build(data).train()
    if compile_model:
        model.losses = torch.compile(model.losses)
    seconds = []
    started = time.perf_counter()
    for _ in optimiser_steps(model, data, ends, history, cfg, n_steps + 1):
        seconds.append(time.perf_counter() - started)
        started = time.perf_counter()
    # the first step warms up allocators (and compiles, with ``compile_model``)
    return (seconds[1:], len(ends) // cfg.batch_size,
            sum(p.numel() for p in model.parameters()), seconds[0])


def bench_model(text: str, args, data, split) -> dict:
    """Step time and epoch estimate; a real one-epoch fit when affordable; inference time.
    ``text`` is a model name with optional settings (`parse_variant`)."""
    name, overrides = parse_variant(text)
    cls = predictor_class(name)
    common = dict(preset=args.preset, device="cpu", num_threads=args.threads, cache_dir=None,
                  progress=False, **overrides)
    if args.stocks_per_step is not None:
        common["stocks_per_step"] = args.stocks_per_step or None
    probe = cls(**common)
    load = os.getloadavg()[0]
    steps, per_epoch, n_params, first = time_steps(probe, data, split, args.steps, args.compile)
    step_s = statistics.median(steps)
    row = {"model": text, "load": load, "params": n_params,
           "stocks/step": probe.train_config.stocks_per_step or len(data.tickers),
           "steps/epoch": per_epoch, "s/step": step_s, "s/step (mean)": statistics.fmean(steps),
           "epoch s (est)": step_s * per_epoch, "epoch s (measured)": float("nan"),
           "epoch s (trainer)": float("nan"), "preset epochs": probe.train_config.epochs}
    if args.compile:
        row["compile s"] = first
    if args.valid_seconds:
        from storm_bt.models.neural.training import valid_rank_ic

        model = probe.build(data).eval()
        ends = data.sample_ends(*split.valid, probe.history)
        k = probe.train_config.valid_stocks
        stocks = np.sort(np.random.default_rng(0).choice(len(data.tickers), k, replace=False)) \
            if k and k < len(data.tickers) else None
        started = time.perf_counter()
        valid_rank_ic(model, data, ends, probe.history, 32, torch.device("cpu"), stocks)
        row["valid s"] = time.perf_counter() - started
        row["epoch s (est)"] += row["valid s"]
    row["rss GB"] = peak_rss_gb()
    row["rss now GB"] = rss_now_gb()
    if args.steps_only:
        return row
    measured = row["epoch s (est)"] <= args.max_epoch_seconds
    # a real epoch when affordable, else two batches: a fitted model to time inference
    cap = None if measured else 2 * probe.train_config.batch_size
    predictor = cls(epochs=1, max_train_samples=cap, **common)
    started = time.perf_counter()
    predictor.fit(data, split)
    if measured:
        # the fit's wall time (the data's digest for the checkpoint key, the model's build,
        # the loop's set-up and the epoch) and the epoch alone as the training loop logs it
        # (its steps, the diagnostics and the validation pass)
        row["epoch s (measured)"] = time.perf_counter() - started
        row["epoch s (trainer)"] = predictor.train_result["epochs"][0]["seconds"]
    started = time.perf_counter()
    frame = predictor.predict(data, split.test_start, data.dates[-1])
    row["predict s"] = time.perf_counter() - started
    row["predict days"] = int(frame.notna().any(axis=1).sum())
    if hasattr(predictor, "factors"):
        started = time.perf_counter()
        predictor.factors(data, split.test_start, data.dates[-1])
        row["factors s"] = time.perf_counter() - started
    row["rss GB"] = peak_rss_gb()
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--models", default="storm,lstm,transformer,factorvae",
                        help="comma-separated model names; with settings, separate the models "
                             "by ';': 'storm;storm:ts_patch=16,enc_depth=1'")
    parser.add_argument("--universe", choices=["dj30", "all"], default="dj30",
                        help="the STORM_SPEC Dow 30 tickers in the file, or all of its tickers")
    parser.add_argument("--preset", default="small")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--max-epoch-seconds", type=float, default=240.0)
    parser.add_argument("--steps-only", action="store_true",
                        help="time the optimiser steps only (no epoch, no inference): for a "
                             "universe too large to train here")
    parser.add_argument("--stocks-per-step", type=int, default=None,
                        help="stocks drawn per training step (0 = all; default: the preset's)")
    parser.add_argument("--valid-seconds", action="store_true",
                        help="also time one validation pass and add it to the epoch estimate")
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile the model's loss before timing the steps")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if not args.data.exists():
        log.info("SKIP bench_training: %s not found (set STORM_BT_SHARED_DATA or --data)", args.data)
        return 0
    models = args.models.split(";") if ";" in args.models or ":" in args.models \
        else args.models.split(",")
    unknown = [m for m in models if parse_variant(m)[0] not in PREDICTORS]
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(PREDICTORS)}")

    from storm_bt.features.dataset import build_feature_set

    torch.set_num_threads(args.threads)
    logging.getLogger("storm_bt").setLevel(logging.WARNING)
    panel = load_universe(args.data, args.universe)
    tickers = list(panel.tickers)
    started = time.perf_counter()
    data = build_feature_set(panel)
    log.info("features: %d days x %d stocks x %d features in %.1f s (peak RSS %.1f GB, "
             "RSS now %.1f GB)", len(data.dates), len(tickers), data.n_features,
             time.perf_counter() - started, peak_rss_gb(), rss_now_gb())
    import pandas as pd

    split = paper_split(data)
    rows = []
    for text in models:
        row = bench_model(text, args, data, split)
        rows.append(row)
        log.info("%s", "  ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                                 for k, v in row.items()))
    log.info("\n%s", pd.DataFrame(rows).set_index("model").round(3).to_string())
    log.info("torch %s, %d threads, preset %s, device cpu, %d cores; 'load' is the 1-minute "
             "load average when the model's timing began", torch.__version__, args.threads,
             args.preset, os.cpu_count())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
