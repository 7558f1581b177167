"""How much a gated STORM's prediction takes from the CS view (validation only).

    python benchmarks/storm_gate_ablation.py [--data PATH] [--universe dj30|all]
        [--variant storm:fusion=gated,factor_tokens=ts] [--seeds 1 2 3] [--threads 1]
        --cache-dir DIR

For each seed it loads the fitted model from the checkpoint cache (training it when the
cache lacks it, as `storm_validation.py` would), scores every stock over the validation
range (2019-04-01 .. 2021-03-31) with the fusion's gates as trained, then again with one
gate closed (tanh a = 0) at a time and with all of them closed, and reports the mean daily
RankIC of each and its paired daily difference to the trained model (Newey-West standard
error). With factor_tokens="ts", closing `ts_reads_cs` removes every path from the CS branch
to the prediction (depth 1), so its difference is what the CS view adds; closing `mlp_u`
removes the fusion's extra MLP on the TS tokens. Nothing is retrained and the test period
is never read.
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from bench_training import add_paper_arguments, paper_data, paper_predictor, parse_variant

log = logging.getLogger("storm_gate_ablation")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_paper_arguments(parser)
    parser.add_argument("--variant", default="storm:fusion=gated,factor_tokens=ts")
    parser.add_argument("--cache-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if not args.data.exists():
        log.info("SKIP storm_gate_ablation: %s not found", args.data)
        return 0
    from storm_bt.evaluation.significance import paired_difference
    from storm_bt.models.neural.training import window_rank_ic

    torch.set_num_threads(args.threads)
    data, split = paper_data(args.data, args.universe)
    name, overrides = parse_variant(args.variant)
    rows = []
    for seed in args.seeds:
        predictor = paper_predictor(args, name, seed, args.cache_dir, **overrides)
        predictor.fit(data, split)
        fusion = predictor.model.fusion
        if fusion is None or fusion.gates is None:
            raise SystemExit(f"{args.variant} has no gated fusion; add fusion=gated")
        ends = data.sample_ends(*split.valid, predictor.history)

        def scored() -> pd.Series:
            return window_rank_ic(predictor.model, data, ends, predictor.history, 8,
                                  torch.device("cpu"))

        trained = fusion.gates.detach().clone()
        base = scored()
        row = {"seed": seed, "trained": base.mean(),
               **{f"tanh a {k}": v for k, v in fusion.gate_values().items()}}
        closed = {update: [i] for i, update in enumerate(fusion.updates)}
        closed["all"] = list(range(len(fusion.updates)))
        for label, columns in closed.items():
            with torch.no_grad():
                fusion.gates.copy_(trained)
                fusion.gates[:, columns] = 0.0
            ic = scored()
            diff = paired_difference(base, ic)
            row[f"{label} closed"] = ic.mean()
            row[f"trained minus {label} closed"] = diff["diff"]
            row[f"NW t ({label})"] = diff["t"]
        with torch.no_grad():
            fusion.gates.copy_(trained)
        rows.append(row)
        log.info("seed %d: %s", seed, {k: round(float(v), 4) for k, v in row.items()})
    table = pd.DataFrame(rows)
    log.info("\n%s", table.round(4).T.to_string())
    if len(rows) > 1:
        for label in ("ts_reads_cs", "mlp_u", "all"):
            if f"trained minus {label} closed" not in table:
                continue
            d = table[f"trained minus {label} closed"]
            log.info("trained minus %s closed over seeds: %+.4f ± %.4f", label, d.mean(),
                     d.std(ddof=1) / np.sqrt(len(d)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
