"""`TorchPredictor`: any torch model behind the `Predictor` interface, with a checkpoint cache.

fit(data, split) builds the model for the data's dimensions (stocks S, features F, price
fields P), then either reuses a checkpoint or trains it with the shared loop
(`storm_bt.models.neural.training`). predict(data, start, end) scores every decision date in the
range whose full window of ``history`` days exists, in eval mode, without labels.

The checkpoint cache (keys, atomic writes, safe reads, one trainer per key) is
`storm_bt.models.neural.checkpoint`.
"""
from __future__ import annotations

import logging
import numbers
import os
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Callable, Mapping

import numpy as np
import pandas as pd
from torch import nn

from storm_bt.features.dataset import FeatureSet, Split
from storm_bt.errors import StormBtError, os_reason
from storm_bt.models.base import Predictor
from storm_bt.models.neural.checkpoint import (DEFAULT_CACHE_DIR, CHECKPOINT_FORMAT,
                                               checkpoint_key, data_identity, key_lock,
                                               load_checkpoint, save_checkpoint, versions)
from storm_bt.models.neural.training import (
    PREDICT_STOCK_WINDOWS, TrainConfig, TrainResult, keyed_when_set, predict_windows,
    train_identity, train_model,
)
from storm_bt.models.neural.distributed import is_main_process, world_size
from storm_bt.runtime import machine_description, resolve_device, seed_everything, torch_threads
from storm_bt.trees import ABSENT, differences, lookup, plain, short

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class DataDims:
    """The data dimensions a model is built for."""

    n_stocks: int
    n_features: int
    n_price: int
    #: names of the first n_price features (the normalised price fields)
    price_names: tuple[str, ...] = ()

    @classmethod
    def of(cls, data: FeatureSet) -> "DataDims":
        return cls(len(data.tickers), data.n_features, len(data.price_names),
                   tuple(data.price_names))


#: Builds the model for given dimensions (the model's own config is bound inside).
ModelFactory = Callable[[DataDims], nn.Module]


class TorchPredictor(Predictor):
    """A torch model factory + `TrainConfig` behind fit/predict, with checkpoint reuse.

    Args:
        model_name: the registry name (part of the checkpoint key).
        factory: builds the model for the data's `DataDims`.
        model_config: the model's settings as plain values (key and checkpoint).
        history: window length T the model reads.
        train: the training settings (seed included).
        cache_dir: where checkpoints are looked up and saved (None: no cache).
        checkpoint: an explicit checkpoint file: loaded if it exists (it must match this
            model, its settings and the data), else written after training.
        force_retrain: train even when a matching checkpoint exists (and overwrite it).
        predict_batch_size: windows per forward pass in predict.
    """

    name = "torch"
    #: the model code's version in the checkpoint key: raise it when a code change alters
    #: what the same config trains to, so that stale checkpoints are not reused
    weights_version = 1
    #: model settings added after checkpoints were cached: a setting here enters the key
    #: (and the stored model_config) only when it differs from the value listed, so fits
    #: that do not use it keep the keys they had before it existed
    model_keyed_when_set: Mapping[str, object] = {}

    def __init__(self, model_name: str, factory: ModelFactory, model_config: Mapping,
                 history: int, train: TrainConfig,
                 cache_dir: str | os.PathLike | None = DEFAULT_CACHE_DIR,
                 checkpoint: str | os.PathLike | None = None, force_retrain: bool = False,
                 predict_batch_size: int = 64) -> None:
        self.name = model_name
        self.factory = factory
        self.model_config = dict(model_config)
        self.history = int(history)
        self.train_config = train
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.checkpoint = Path(checkpoint) if checkpoint else None
        self.force_retrain = force_retrain
        self.predict_batch_size = predict_batch_size
        self.model: nn.Module | None = None
        self.tickers: tuple[str, ...] | None = None
        #: the dimensions of the data the model was fitted on (None before fit)
        self.dims: DataDims | None = None
        self.train_result: dict | None = None
        #: where the fitted weights came from: "trained" or the checkpoint path reused
        self.source: str | None = None
        #: the last fit's checkpoint key, and its checkpoint file (None without a cache)
        self.fit_key: str | None = None
        self.checkpoint_file: Path | None = None

    def config(self) -> dict:
        """The model's settings as plain values; once fitted, also ``data_dims``: the stocks,
        features and price fields the model was sized to (which take the place of a
        preset's placeholders, e.g. StormConfig's n_stocks / n_features / n_price)."""
        out = {"name": self.name, "history": self.history, "model": self.model_config,
               "train": self.train_config.as_dict()}
        if self.dims is not None:
            out["data_dims"] = plain(asdict(self.dims))
        return out

    # ------------------------------------------------------------------ fit
    def build(self, data: FeatureSet) -> nn.Module:
        """A freshly initialised model for the data's dimensions (seeded)."""
        seed_everything(self.train_config.seed)
        return self.factory(DataDims.of(data))

    def cache_path(self, key: str) -> Path | None:
        if self.checkpoint is not None:
            return self.checkpoint
        if self.cache_dir is None:
            return None
        return self.cache_dir / f"{self.name}-{key[:20]}.pt"

    def model_identity(self, model_config: Mapping) -> dict:
        """The model settings that define the trained weights (`model_keyed_when_set`)."""
        return keyed_when_set(model_config, self.model_keyed_when_set)

    def _payload_expected(self, data: FeatureSet, split: Split) -> dict:
        ident = data_identity(data, split)
        model_config = self.model_identity(self.model_config)
        return {
            "model_name": self.name,
            "model_config": model_config,
            "history": self.history,
            "train_config": self.train_config.identity(),
            "data": ident,
            "dims": plain(asdict(DataDims.of(data))),
            "weights_version": self.weights_version,
            "key": checkpoint_key(self.name, {**model_config, "history": self.history},
                                  self.train_config, ident, self.weights_version),
        }

    def _check_explicit(self, path: Path, payload: dict, expected: dict) -> None:
        """Raise naming every field where an explicit checkpoint differs from this run."""
        wanted = {k: v for k, v in expected.items() if k != "key"}
        saved = {k: payload.get(k, ABSENT) for k in wanted}
        # Checkpoints written before the field existed hold weights of version 1.
        saved["weights_version"] = payload.get("weights_version", 1)
        if isinstance(saved["train_config"], Mapping):
            saved["train_config"] = train_identity(saved["train_config"])
        if isinstance(saved["model_config"], Mapping):
            saved["model_config"] = self.model_identity(saved["model_config"])
        diffs = differences(saved, wanted)
        if diffs:
            shown = "; ".join(f"{d}: checkpoint {short(lookup(saved, d))}, "
                              f"this run {short(lookup(wanted, d))}" for d in diffs[:6])
            more = f" (and {len(diffs) - 6} more)" if len(diffs) > 6 else ""
            raise StormBtError(
                f"{path}: checkpoint does not match this run in {', '.join(diffs)}: {shown}{more}; "
                "use the settings and data it was trained with, another checkpoint file (checkpoint=), or "
                "--retrain to overwrite it")

    def fit(self, data: FeatureSet, split: Split) -> "TorchPredictor":
        cfg = self.train_config
        expected = self._payload_expected(data, split)
        path = self.cache_path(expected["key"])
        self.fit_key, self.checkpoint_file = expected["key"], path
        # One trainer per key: a process that finds another training the same key waits for
        # its checkpoint and then reuses it (DDP ranks train together and take no lock).
        with key_lock(path if world_size() == 1 else None), torch_threads(cfg.num_threads):
            model = self.build(data)
            payload = None
            if path is not None and path.exists() and not self.force_retrain:
                try:
                    payload = load_checkpoint(path)
                except StormBtError as exc:
                    if self.checkpoint is not None:
                        raise
                    log.warning("%s; retraining", exc)
            if payload is not None:
                if self.checkpoint is not None:
                    self._check_explicit(path, payload, expected)
                if payload.get("key") == expected["key"]:
                    model.load_state_dict(payload["state_dict"])
                    model.to(resolve_device(cfg.device)).eval()
                    self.model, self.tickers = model, tuple(data.tickers)
                    self.dims = DataDims.of(data)
                    self.train_result, self.source = payload.get("train_log"), str(path)
                    log.info("%s: reusing checkpoint %s (trained %s); pass --retrain to train "
                             "again", self.name, path, payload.get("saved_at", "earlier"))
                    return self
                log.warning("%s: cached %s has another key; retraining", self.name, path)
            result = train_model(model, data, split, self.history, cfg, name=self.name)
            self.train_result, self.source = result.as_dict(), "trained"
            if path is not None and is_main_process():  # under DDP only rank 0 writes
                self._save(path, model, expected, result)
        self.model, self.tickers = model, tuple(data.tickers)
        self.dims = DataDims.of(data)
        return self

    def _save(self, path: Path, model: nn.Module, expected: dict, result: TrainResult) -> None:
        payload = {
            "format": CHECKPOINT_FORMAT,
            **expected,
            "train_config": self.train_config.as_dict(),
            "versions": versions(),
            "machine": machine_description(),
            "saved_at": pd.Timestamp.now(tz="UTC").isoformat(timespec="seconds"),
            "train_log": result.as_dict(),
            "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        }
        try:
            save_checkpoint(path, payload)
        except OSError as exc:   # a full disk after a long fit: keep the fitted model
            log.warning("%s: checkpoint not saved (%s: %s); the run goes on with the fitted "
                        "model, which is trained again next time", self.name, path,
                        os_reason(exc))
            return
        log.info("%s: saved checkpoint %s", self.name, path)

    # -------------------------------------------------------------- predict
    def _check_fitted(self, data: FeatureSet) -> nn.Module:
        if self.model is None:
            raise RuntimeError("fit the model before predict")
        if tuple(data.tickers) != self.tickers:
            raise StormBtError(
                f"{self.name}: the model was fitted on tickers {', '.join(self.tickers)} but the "
                f"data has {', '.join(data.tickers)}; use the same universe for fit and predict")
        return self.model

    def windows_per_forward(self, n_stocks: int) -> int:
        """Windows per forward pass at inference: ``predict_batch_size``, capped so that a
        pass holds at most PREDICT_STOCK_WINDOWS stock-windows (memory flat in S)."""
        return max(1, min(self.predict_batch_size, PREDICT_STOCK_WINDOWS // max(1, n_stocks)))

    def predict(self, data: FeatureSet, start, end) -> pd.DataFrame:
        """Scores for every date in [start, end]; NaN where the window or the stock is missing."""
        model = self._check_fitted(data)
        idx = data.date_index(start, end)
        ends = data.sample_ends(start, end, self.history, labelled=False)
        values = np.full((len(idx), len(data.tickers)), np.nan)
        device = next(iter(model.parameters())).device
        with torch_threads(self.train_config.num_threads):
            scores = predict_windows(model, data, ends, self.history,
                                     self.windows_per_forward(len(data.tickers)), device)
        values[np.searchsorted(idx, ends)] = scores
        return self.frame(data, idx, values)


def _same_kind(model_name: str, key: str, current, value):
    """``value`` if it is of the preset value's kind (bool, integer, real, text, sequence)."""
    if current is None:
        return value
    kinds = ((bool, lambda v: isinstance(v, (bool, np.bool_)), "True or False"),
             (numbers.Integral, lambda v: isinstance(v, numbers.Integral)
              and not isinstance(v, (bool, np.bool_)), "an integer"),
             (numbers.Real, lambda v: isinstance(v, numbers.Real)
              and not isinstance(v, (bool, np.bool_)), "a number"),
             (str, lambda v: isinstance(v, str), "text"),
             ((tuple, list), lambda v: isinstance(v, (tuple, list)), "a tuple"))
    for kind, fits, label in kinds:
        if isinstance(current, kind):
            if not fits(value):
                raise StormBtError(f"{model_name}: setting {key}={value!r}: expected {label} "
                                   f"(the preset has {current!r})")
            return value
    return value


def apply_overrides(model_config, train_config: TrainConfig, overrides: Mapping, model_name: str):
    """Route ``name=value`` overrides to the model or the train config; unknown names fail.

    A ``None`` value keeps the preset's setting (so CLI flags left unset change nothing). A
    value of another kind than the preset's (text for a number, a float for a count) fails.
    """
    model_fields = {f.name for f in fields(model_config)}
    train_fields = {f.name for f in fields(train_config)}
    to_model, to_train = {}, {}
    for key, value in overrides.items():
        if value is None:
            continue
        if key in model_fields:
            to_model[key] = _same_kind(model_name, key, getattr(model_config, key), value)
        elif key in train_fields:
            to_train[key] = _same_kind(model_name, key, getattr(train_config, key), value)
        else:
            raise StormBtError(
                f"{model_name}: unknown setting {key!r}; model settings: "
                f"{', '.join(sorted(model_fields))}; training settings: "
                f"{', '.join(sorted(train_fields))}")
    return replace(model_config, **to_model), replace(train_config, **to_train)


class PresetTorchPredictor(TorchPredictor):
    """A `TorchPredictor` configured from named presets plus keyword overrides.

    Subclasses set ``name``, ``presets`` (preset name -> (model config dataclass with a
    ``history`` field, TrainConfig)) and implement ``make_model(config, dims)``.
    The keywords match the CLI (`storm_bt.backtest.model_args.predictor_kwargs`).
    """

    presets: Mapping[str, tuple] = {}

    def __init__(self, preset: str = "small", seed: int = 1337, epochs: int | None = None,
                 device: str = "auto", num_threads: int = 2,
                 cache_dir: str | os.PathLike | None = DEFAULT_CACHE_DIR,
                 checkpoint: str | os.PathLike | None = None, force_retrain: bool = False,
                 **overrides) -> None:
        if preset not in self.presets:
            raise StormBtError(f"{self.name}: unknown preset {preset!r}; choose one of "
                               f"{', '.join(self.presets)}")
        model_cfg, train_cfg = self.presets[preset]
        model_cfg, train_cfg = apply_overrides(
            model_cfg, train_cfg,
            {**overrides, "seed": seed, "epochs": epochs, "device": device,
             "num_threads": num_threads}, self.name)
        self.preset = preset
        self.model_cfg = model_cfg
        super().__init__(self.name, lambda dims: self.make_model(self.model_cfg, dims),
                         model_config=plain(asdict(model_cfg)), history=model_cfg.history,
                         train=train_cfg, cache_dir=cache_dir, checkpoint=checkpoint,
                         force_retrain=force_retrain)

    def make_model(self, config, dims: DataDims) -> nn.Module:
        raise NotImplementedError

    def config(self) -> dict:
        return {**super().config(), "preset": self.preset}
