"""The model registry: one place that maps a model name to its class, label and presets.

Every list of models in the project (the CLI's ``--model`` choices, the factor table's
rows, the trading table's predictors) and every ``--preset`` comes from here. Classes are
named as ``"module:Class"`` strings and imported only when a model is built, so reading the
registry (``--help``, config validation) never loads torch.

A neural model's presets are its class's ``presets`` table, preset name ->
(model config, `TrainConfig`); every neural model has each of `PRESET_NAMES` (a test checks
it). LightGBM has one configuration whatever the preset.
"""
from __future__ import annotations

import ast
import importlib
from dataclasses import dataclass

from storm_bt.errors import StormBtError

#: Size presets of the neural models: tiny (tests, seconds), small (the default, CPU), paper.
PRESET_NAMES: tuple[str, ...] = ("tiny", "small", "paper")
DEFAULT_PRESET = "small"
DEFAULT_MODEL = "storm"


@dataclass(frozen=True)
class ModelSpec:
    """A registered model: its CLI name, the class that implements it and its table label."""

    name: str
    target: str
    label: str
    neural: bool

    def load(self) -> type:
        """The predictor class (imports its module, and torch for a neural model)."""
        module, cls = self.target.split(":")
        return getattr(importlib.import_module(module), cls)


#: Every model, in the row order of the paper's factor table.
MODELS: dict[str, ModelSpec] = {spec.name: spec for spec in (
    ModelSpec("lightgbm", "storm_bt.models.baselines.lightgbm:LightGBMPredictor", "LightGBM", False),
    ModelSpec("lstm", "storm_bt.models.baselines.lstm:LSTMPredictor", "LSTM", True),
    ModelSpec("transformer", "storm_bt.models.baselines.transformer:TransformerPredictor",
              "Transformer", True),
    ModelSpec("factorvae", "storm_bt.models.baselines.factorvae:FactorVAEPredictor", "FactorVAE", True),
    ModelSpec("storm-ts", "storm_bt.models.storm.predictor:StormTSPredictor", "STORM-w/o-CS", True),
    ModelSpec("storm-cs", "storm_bt.models.storm.predictor:StormCSPredictor", "STORM-w/o-TS", True),
    ModelSpec("storm", "storm_bt.models.storm.predictor:StormPredictor", "STORM", True),
)}
MODEL_NAMES: tuple[str, ...] = tuple(MODELS)
NEURAL_MODELS: tuple[str, ...] = tuple(n for n, s in MODELS.items() if s.neural)


def model_spec(name: str, flag: str = "--model") -> ModelSpec:
    """The registered model called ``name``; an unknown name is a user error."""
    if name not in MODELS:
        raise StormBtError(f"{flag} {name!r}: unknown model; choose from {', '.join(MODEL_NAMES)}")
    return MODELS[name]


def check_preset(preset: str) -> str:
    if preset not in PRESET_NAMES:
        raise StormBtError(f"--preset {preset!r}: choose one of {', '.join(PRESET_NAMES)}")
    return preset


def model_presets(name: str) -> dict[str, tuple]:
    """A neural model's presets, preset name -> (model config, TrainConfig); {} otherwise."""
    spec = model_spec(name)
    return dict(spec.load().presets) if spec.neural else {}


@dataclass(frozen=True)
class ModelSettings:
    """How to build any registered model: the settings the commands share.

    The neural settings (preset, epochs, device, threads, cache, overrides) are ignored by
    LightGBM, which takes ``threads`` as its ``num_threads``.

    ``overrides`` are the CLI's ``--set`` items, ``"[MODEL:]KEY=VALUE"``: a model or
    training setting of the preset (``stocks_per_step=128``, ``storm:ts_patch=8``), for
    every neural model of the run or for MODEL alone; VALUE is read as a Python literal
    (a number, True/False, None, a tuple), else kept as text. They enter the checkpoint key
    like any setting, so an override never reuses a fit trained without it.
    """

    preset: str = DEFAULT_PRESET
    epochs: int | None = None
    device: str = "auto"
    threads: int = 2
    cache_dir: str | None = ".cache/storm_bt/checkpoints"
    retrain: bool = False
    overrides: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        from storm_bt.runtime import DEVICES

        object.__setattr__(self, "overrides", tuple(self.overrides))   # JSON gives a list
        for item in self.overrides:
            parse_override(item)

        check_preset(self.preset)
        if self.epochs is not None and self.epochs < 1:
            raise StormBtError(f"--epochs {self.epochs}: train for at least 1 epoch")
        if self.threads < 1:
            raise StormBtError(f"--threads {self.threads}: use at least 1 thread")
        if self.device not in DEVICES:
            raise StormBtError(f"--device {self.device!r}: use one of {', '.join(DEVICES)}")

    def overrides_for(self, name: str) -> dict:
        """The settings ``--set`` gives model ``name``: its own items after the general ones."""
        general, own = {}, {}
        for item in self.overrides:
            model, key, value = parse_override(item)
            if model is None:
                general[key] = value
            elif model == name:
                own[key] = value
        return {**general, **own}

    def check_models(self, names) -> None:
        """Refuse, before any fit, an override that a neural model of ``names`` does not have
        (or that names a model the run does not train). Loads the model classes, and so
        torch, only when there are overrides."""
        if not self.overrides:
            return
        neural = [n for n in dict.fromkeys(names) if model_spec(n).neural]
        for item in self.overrides:
            model, _, _ = parse_override(item)
            if model is not None and model not in neural:
                raise StormBtError(f"--set {item!r}: {model} is not among the neural models "
                                   f"of this run ({', '.join(neural) or 'none'})")
            if not neural:   # nothing would read it: a typo would pass unseen
                raise StormBtError(f"--set {item!r}: this run trains no neural model, so no "
                                   "model would read it; drop --set or add a neural model")
        for name in neural:
            try:
                model_spec(name).load()(preset=self.preset, cache_dir=None,
                                        **self.overrides_for(name))
            except StormBtError as error:
                raise StormBtError(f"--set: {error}") from None


#: settings that the commands set through their own flags, never through --set
RESERVED_SETTINGS = {"seed": "--seed/--seeds", "epochs": "--epochs", "device": "--device",
                     "num_threads": "--threads", "preset": "--preset",
                     "cache_dir": "--cache-dir", "force_retrain": "--retrain",
                     "checkpoint": "--cache-dir"}


def parse_override(item: str) -> tuple[str | None, str, object]:
    """``"[MODEL:]KEY=VALUE"`` -> (MODEL or None, KEY, VALUE read as a Python literal)."""
    target, sep, text = str(item).partition("=")
    model, colon, key = target.rpartition(":")
    if not sep or not key.isidentifier() or (colon and not model):
        raise StormBtError(f"--set {item!r}: write KEY=VALUE or MODEL:KEY=VALUE, "
                           f"e.g. stocks_per_step=128 or storm:ts_patch=8")
    if key in RESERVED_SETTINGS:
        raise StormBtError(f"--set {item!r}: {key} has its own flag ({RESERVED_SETTINGS[key]})")
    if colon:
        spec = model_spec(model, flag="--set")
        if not spec.neural:
            raise StormBtError(f"--set {item!r}: {model} has no preset settings to change; "
                               f"--set applies to the neural models")
    try:
        value = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError):
        value = text.strip()
    return (model or None), key, value


def make_predictor(name: str, seed: int = 1337, settings: ModelSettings | None = None, **overrides):
    """Build the model registered as ``name`` with the shared settings and a seed.

    ``overrides`` go to the class as they are (model or training config fields), after the
    settings' own (``--set``) overrides for this model.
    """
    spec = model_spec(name)
    settings = settings or ModelSettings()
    if spec.neural:
        kwargs = dict(preset=settings.preset, epochs=settings.epochs, device=settings.device,
                      num_threads=settings.threads, cache_dir=settings.cache_dir,
                      force_retrain=settings.retrain, **settings.overrides_for(name))
    else:
        kwargs = dict(num_threads=settings.threads)
    return spec.load()(seed=seed, **{**kwargs, **overrides})
