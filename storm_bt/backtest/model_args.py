"""The model flags shared by the subcommands, and the predictor they build."""
from __future__ import annotations

import argparse

from storm_bt.models import REGISTRY, Predictor, make_predictor

DEFAULT_MODEL = "storm"
TORCH_MODELS = {"storm", "storm-ts", "storm-cs", "lstm", "transformer", "factorvae"}


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("model")
    g.add_argument("--model", default=DEFAULT_MODEL, choices=sorted(REGISTRY),
                   help=f"the predictor of next-day returns (default {DEFAULT_MODEL})")
    g.add_argument("--preset", choices=["tiny", "small", "paper"], default="small",
                   help="size preset of the torch models (default small)")
    g.add_argument("--epochs", type=int, metavar="N", help="override the preset's training epochs")
    g.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                   help="torch device: auto uses CUDA when present (default auto)")
    g.add_argument("--threads", type=int, default=2, help="CPU threads for training (default 2)")
    g.add_argument("--cache-dir", default=".cache/storm_bt/checkpoints", metavar="DIR",
                   help="checkpoint cache; a matching checkpoint is reused instead of retraining")
    g.add_argument("--retrain", action="store_true",
                   help="train even when a matching checkpoint is cached")


def predictor_kwargs(args: argparse.Namespace, model: str | None = None) -> dict:
    """Keyword settings for `make_predictor` from the flags."""
    model = model or args.model
    kwargs: dict = {"seed": args.seed}
    if model in TORCH_MODELS:
        kwargs.update(preset=args.preset, epochs=args.epochs, device=args.device,
                      num_threads=args.threads, cache_dir=args.cache_dir,
                      force_retrain=args.retrain)
    return kwargs


def build_predictor(args: argparse.Namespace, model: str | None = None) -> Predictor:
    return make_predictor(model or args.model, **predictor_kwargs(args, model))
