"""Whether training pulls a gated STORM's fusion gates open (training period only).

    python benchmarks/storm_gate_gradients.py [--data PATH] [--universe dj30|all]
        [--variant storm] [--seeds 1] [--steps 430] [--threads 2] [--preset small]

For each seed it builds the variant as a fit would (the seed's initialisation) and trains
it for ``--steps`` optimiser steps on random batches of training windows (2008-04-01 ..
2019-03-31; the preset's batch size, stocks per step, AdamW, clipping and learning rate,
with a warmup over the first 10% of the steps and a linear decay to 0 after it). At every
step it records the gradient of the total loss, and of the label terms alone (ret, pred,
ic), with respect to each gate logit a of the fusion (tanh a scales that update). It
prints, for the first and the second half of the steps,

    t = mean_k g_k / (sd_k g_k / sqrt(K))

of the per-step gradients g_k: a gate the loss consistently wants open or closed has
|t| well above 2; a gate whose gradient is noise has |t| near 1 and wanders (with Adam,
by about lr sqrt(K)). Also the final tanh a. Validation and test data are never read.
"""
from __future__ import annotations

import argparse
import logging

import numpy as np
import pandas as pd
import torch

from bench_training import (add_paper_arguments, paper_data, paper_predictor, parse_variant,
                            random_batch)

log = logging.getLogger("storm_gate_gradients")


def gate_gradients(model, data, split, history: int, cfg, steps: int,
                   seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(K, G) per-step gradients of the gate logits from the total loss and from the label
    terms, over ``steps`` training steps of ``model`` (trained in place)."""
    from storm_bt.features.dataset import with_label_horizon
    from storm_bt.models.neural.training import make_optimizer, warmup_linear_schedule
    from storm_bt.models.storm.model import LABEL_TERMS

    gates = model.fusion.gates
    data = with_label_horizon(data, cfg.label_horizon)       # the labels a fit trains on
    ends = data.sample_ends(*split.train, history)
    optimizer = make_optimizer(model, cfg)
    scheduler = warmup_linear_schedule(optimizer, max(1, steps // 10), steps)
    rng = np.random.default_rng(seed)
    total, label = [], []
    model.train()
    for _ in range(steps):
        terms = model.losses(random_batch(model, data, ends, history, cfg, rng))
        label_loss = sum(terms[name] for name in LABEL_TERMS if name in terms)
        (from_label,) = torch.autograd.grad(label_loss, gates, retain_graph=True)
        optimizer.zero_grad(set_to_none=True)
        terms["total"].backward()
        total.append(gates.grad.detach().flatten().clone().numpy())
        label.append(from_label.detach().flatten().numpy())
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        scheduler.step()
    return np.array(total), np.array(label)


def t_statistics(grads: np.ndarray) -> np.ndarray:
    """mean / (sd / sqrt(K)) of each column of (K, G) per-step gradients; 0 for a gate the
    loss never reaches (every gradient exactly 0, e.g. the CS tokens' gates for the label
    terms when the head reads the TS tokens alone)."""
    mean, sd = grads.mean(0), grads.std(0, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = mean / (sd / np.sqrt(len(grads)))
    return np.where(sd > 0, t, 0.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_paper_arguments(parser)
    parser.add_argument("--variant", default="storm")
    parser.add_argument("--steps", type=int, default=430)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if not args.data.exists():
        log.info("SKIP storm_gate_gradients: %s not found", args.data)
        return 0
    if args.steps < 4:
        raise SystemExit("--steps must be at least 4 (two halves of two steps)")
    torch.set_num_threads(args.threads)
    data, split = paper_data(args.data, args.universe)
    name, overrides = parse_variant(args.variant)
    rows = []
    for seed in args.seeds:
        predictor = paper_predictor(args, name, seed, **overrides)
        model = predictor.build(data)
        if getattr(model, "fusion", None) is None or model.fusion.gates is None:
            raise SystemExit(f"{args.variant} has no gated fusion; add fusion=gated")
        total, label = gate_gradients(model, data, split, predictor.history,
                                      predictor.train_config, args.steps, seed)
        depth = model.fusion.gates.shape[0]
        names = [u if depth == 1 else f"{u}[{i}]"
                 for i in range(depth) for u in model.fusion.updates]
        final = torch.tanh(model.fusion.gates.detach()).flatten().tolist()
        half = args.steps // 2
        for source, grads in (("total loss", total), ("label terms", label)):
            for part, rows_of in (("first half", slice(0, half)),
                                  ("second half", slice(half, None))):
                rows.append({"seed": seed, "what": f"t, {source}, {part}",
                             **dict(zip(names, t_statistics(grads[rows_of])))})
        rows.append({"seed": seed, "what": "tanh a after the steps", **dict(zip(names, final))})
    log.info("\n%s", pd.DataFrame(rows).round(4).to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
