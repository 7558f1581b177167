"""How much a gated STORM's prediction takes from the CS view (validation only).

    python benchmarks/storm_gate_ablation.py [--data PATH] [--universe dj30|all]
        [--variant storm:fusion=gated,factor_tokens=ts] [--seeds 1 2 3] [--threads 1]
        [--folds K [--block-days 252] [--by-block]] --cache-dir DIR

For each seed it loads the fitted model from the checkpoint cache (training it when the
cache lacks it, as `storm_validation.py` would), scores every stock over the validation
range (2019-04-01 .. 2021-03-31) with the fusion's gates as trained, then again with one
gate closed (tanh a = 0) at a time and with all of them closed, and reports the mean daily
RankIC of each and its paired daily difference to the trained model (Newey-West standard
error). With factor_tokens="ts", closing `ts_reads_cs` removes every path from the CS branch
to the prediction (depth 1), so its difference is what the CS view adds; closing `mlp_u`
removes the fusion's extra MLP on the TS tokens. With peer_attention (D44) the model is
also scored with the factor head's peer read left out (`peers`), which is what the read
adds; with characteristics_read="state", with that read's day-state part closed (V = 0:
the weights w alone, `state`) and with the whole characteristics read closed (w = V = 0,
`characteristics`). Nothing is retrained and the test period is never read.

With ``--folds K`` it scores the walk-forward validation's fits instead
(`walk_forward_validation.py`, same ``--folds`` and ``--block-days``): each of the K blocks
before the test start with its own fit, loaded from the cache, the blocks' daily RankICs
joined into one series per seed (with ``--by-block``, also each block's difference). Give
the ``--variant`` those fits were made with (``storm`` for D43): another spelling is another
cache key, and the blocks would be trained anew.
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from bench_training import (add_paper_arguments, load_universe, paper_data, paper_predictor,
                            parse_variant)

log = logging.getLogger("storm_gate_ablation")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_paper_arguments(parser)
    parser.add_argument("--variant", default="storm:fusion=gated,factor_tokens=ts")
    parser.add_argument("--cache-dir", type=Path, required=True)
    parser.add_argument("--folds", type=int, default=0,
                        help="score the walk-forward validation's K block fits instead")
    parser.add_argument("--block-days", type=int, default=252)
    parser.add_argument("--by-block", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if not args.data.exists():
        log.info("SKIP storm_gate_ablation: %s not found", args.data)
        return 0
    from storm_bt.evaluation.significance import paired_difference

    torch.set_num_threads(args.threads)
    name, overrides = parse_variant(args.variant)
    model_config = paper_predictor(args, name, args.seeds[0], None, **overrides).model_config
    fusion = model_config.get("fusion")
    if fusion != "gated":
        parser.error(f"--variant {args.variant} has fusion={fusion}, not a gated fusion; "
                     "add fusion=gated")
    rows = []
    for seed, scores, blocks, gates in fitted_scores(args, name, overrides, parser):
        base = scores["trained"]
        row = {"seed": seed, "trained": base.mean(), **gates}
        for label, ic in scores.items():
            if label == "trained":
                continue
            diff = paired_difference(base, ic)
            row[f"{label} closed"] = ic.mean()
            row[f"trained minus {label} closed"] = diff["diff"]
            row[f"NW t ({label})"] = diff["t"]
            if args.by_block:
                for k, (first, last) in enumerate(blocks):
                    row[f"block {k + 1} minus {label} closed"] = (
                        base.loc[first:last] - ic.loc[first:last]).mean()
        rows.append(row)
        log.info("seed %d: %s", seed, {k: round(float(v), 4) for k, v in row.items()})
    table = pd.DataFrame(rows)
    log.info("\n%s", table.round(4).T.to_string())
    if len(rows) > 1:
        for label in ("ts_reads_cs", "mlp_u", "all", "peers", "state", "characteristics"):
            if f"trained minus {label} closed" not in table:
                continue
            d = table[f"trained minus {label} closed"]
            log.info("trained minus %s closed over seeds: %+.4f ± %.4f", label, d.mean(),
                     d.std(ddof=1) / np.sqrt(len(d)))
    return 0


def fitted_scores(args, name: str, overrides: dict, parser):
    """Yield (seed, {label: daily RankIC}, the scored blocks' (first, last) dates, the trained
    gates' tanh a) for every seed: the paper split's one fit over its validation range, or
    with ``--folds`` the walk-forward blocks' fits, their days joined in date order."""
    if args.folds:
        from storm_bt.experiments.fitting import fit_model
        from storm_bt.experiments.walkforward import refit_splits
        from storm_bt.features.dataset import build_feature_set

        from walk_forward_validation import settings_for, validation_split

        data = build_feature_set(load_universe(args.data, args.universe))
        blocks = refit_splits(data.dates,
                              validation_split(data.dates, args.folds, args.block_days, parser),
                              args.block_days)
        _, settings = settings_for(args.variant, preset=args.preset, epochs=None,
                                   threads=args.threads, cache_dir=args.cache_dir)
        for seed in args.seeds:
            parts = [gate_scores(fit_model(name, seed, settings, data, block).predictor, data,
                                 block.test) for block in blocks]
            scores = {label: pd.concat([p[0][label] for p in parts]).sort_index()
                      for label in parts[0][0]}
            gates = {f"block {k + 1} tanh a {g}": v for k, p in enumerate(parts)
                     for g, v in p[1].items()}
            yield seed, scores, [block.test for block in blocks], gates
        return
    data, split = paper_data(args.data, args.universe)
    for seed in args.seeds:
        predictor = paper_predictor(args, name, seed, args.cache_dir, **overrides)
        predictor.fit(data, split)
        scores, gates = gate_scores(predictor, data, split.valid)
        yield seed, scores, [split.valid], {f"tanh a {g}": v for g, v in gates.items()}


def gate_scores(predictor, data, days: tuple) -> tuple[dict[str, pd.Series], dict[str, float]]:
    """The fitted gated STORM's daily RankIC over ``days`` (first, last) as trained, with each
    fusion gate closed (tanh a = 0) in turn and with all closed, and (with a peer read) with
    the head's peer read left out; the model is restored. `main` has checked, before any fit,
    that the variant's fusion is gated."""
    from storm_bt.models.neural.training import window_rank_ic

    fusion = predictor.model.fusion
    ends = data.sample_ends(*days, predictor.history)

    def scored() -> pd.Series:
        return window_rank_ic(predictor.model, data, ends, predictor.history, 8,
                              torch.device("cpu"))

    trained = fusion.gates.detach().clone()
    scores = {"trained": scored()}
    closed = {update: [i] for i, update in enumerate(fusion.updates)}
    closed["all"] = list(range(len(fusion.updates)))
    for label, columns in closed.items():
        with torch.no_grad():
            fusion.gates.copy_(trained)
            fusion.gates[:, columns] = 0.0
        scores[label] = scored()
    with torch.no_grad():
        fusion.gates.copy_(trained)
    head = predictor.model.head
    if head.stocks_read_peers is not None:
        peers, head.stocks_read_peers = head.stocks_read_peers, None
        try:
            scores["peers"] = scored()
        finally:
            head.stocks_read_peers = peers
    if head.linear_state is not None:
        weights = [head.linear_state.weight, head.linear_alpha.weight]
        kept = [w.detach().clone() for w in weights]
        try:
            for label, n_closed in (("state", 1), ("characteristics", 2)):
                with torch.no_grad():
                    for w in weights[:n_closed]:
                        w.zero_()
                scores[label] = scored()
        finally:
            with torch.no_grad():
                for w, k in zip(weights, kept):
                    w.copy_(k)
    return scores, dict(fusion.gate_values())


if __name__ == "__main__":
    raise SystemExit(main())
