"""`TorchPredictor`: any torch model behind the `Predictor` interface, with a checkpoint cache.

fit(data, split) builds the model for the data's dimensions (stocks S, features F, price
fields P), then either reuses a checkpoint or trains it with the shared loop
(`storm_bt.models.neural.training`). predict(data, start, end) scores every decision date in the
range whose full window of ``history`` days exists, in eval mode, without labels.

Checkpoint cache: a trained model is saved as a plain dict

    {format, key, model_name, model_config, train_config, data, dims, versions, train_log,
     state_dict}

with ``torch.save`` (written to a temporary file, then ``os.replace``) and read back with
``torch.load(..., weights_only=True)``, so every field is a tensor or a plain python value.
Its key is the SHA-256 of (model name, model config, train config without runtime settings,
data identity); the data identity is the panel fingerprint, a digest of the scaled feature
array (so a change in the feature code is seen), the tickers and the split dates.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Callable, Mapping

import numpy as np
import pandas as pd
import torch
from torch import nn

import storm_bt
from storm_bt.features.dataset import FeatureSet, Split
from storm_bt.errors import StormBtError
from storm_bt.models.base import Predictor
from storm_bt.models.neural.training import (
    PREDICT_STOCK_WINDOWS, RUNTIME_FIELDS, TrainConfig, TrainResult, predict_windows,
    train_model,
)
from storm_bt.runtime import resolve_device, seed_everything, torch_threads

log = logging.getLogger(__name__)

DEFAULT_CACHE_DIR = Path(".cache/storm_bt/checkpoints")
CHECKPOINT_FORMAT = 1


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


def feature_digest(data: FeatureSet) -> str:
    """SHA-256 (16 hex digits) of the feature names and the scaled feature array."""
    h = hashlib.sha256()
    h.update("\x1f".join(data.feature_names).encode())
    h.update(str(data.features.shape).encode())
    h.update(np.ascontiguousarray(data.features).tobytes())
    return h.hexdigest()[:16]


def data_identity(data: FeatureSet, split: Split) -> dict:
    """What a checkpoint was trained on, as plain values."""
    return {
        "fingerprint": data.fingerprint,
        "features": feature_digest(data),
        "tickers": list(data.tickers),
        "split": split.as_dict(),
    }


def checkpoint_key(model_name: str, model_config: Mapping, train_config: TrainConfig,
                   data: Mapping) -> str:
    """SHA-256 of everything that determines the trained weights (seed included)."""
    blob = json.dumps({"model": model_name, "model_config": dict(model_config),
                       "train_config": train_config.identity(), "data": dict(data)},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def _versions() -> dict:
    return {"storm_bt": str(storm_bt.__version__), "torch": str(torch.__version__),
            "numpy": str(np.__version__)}


def save_checkpoint(path: Path, payload: dict) -> None:
    """torch.save to a temporary file beside ``path``, then an atomic rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _short(value, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def load_checkpoint(path: Path) -> dict:
    """``torch.load(path, weights_only=True)``; an unreadable file is a user error."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure to read means a bad file
        raise StormBtError(f"{path}: not a readable storm_bt checkpoint ({exc.__class__.__name__}: "
                           f"{exc}); delete it or pass --retrain") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise StormBtError(f"{path}: not a storm_bt checkpoint of format {CHECKPOINT_FORMAT}; "
                           "delete it or pass --retrain")
    return payload


def _differences(saved, wanted, prefix: str = "") -> list[str]:
    """Dotted names of the fields where two trees of plain values differ."""
    if isinstance(saved, Mapping) and isinstance(wanted, Mapping):
        out = []
        for k in sorted(set(saved) | set(wanted), key=str):
            name = f"{prefix}.{k}" if prefix else str(k)
            if k not in saved or k not in wanted:
                out.append(name)
            else:
                out.extend(_differences(saved[k], wanted[k], name))
        return out
    if isinstance(saved, (list, tuple)) and isinstance(wanted, (list, tuple)):
        return [] if list(saved) == list(wanted) else [prefix]
    return [] if saved == wanted else [prefix]


def _lookup(tree: Mapping, dotted: str):
    node = tree
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return "<absent>"
        node = node[part]
    return node


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
        self.train_result: dict | None = None
        #: where the fitted weights came from: "trained" or the checkpoint path reused
        self.source: str | None = None

    def config(self) -> dict:
        return {"name": self.name, "history": self.history, "model": self.model_config,
                "train": self.train_config.as_dict()}

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

    def _payload_expected(self, data: FeatureSet, split: Split) -> dict:
        ident = data_identity(data, split)
        return {
            "model_name": self.name,
            "model_config": self.model_config,
            "history": self.history,
            "train_config": self.train_config.identity(),
            "data": ident,
            "dims": _plain(asdict(DataDims.of(data))),
            "key": checkpoint_key(self.name, {**self.model_config, "history": self.history},
                                  self.train_config, ident),
        }

    def _check_explicit(self, path: Path, payload: dict, expected: dict) -> None:
        """Raise naming every field where an explicit checkpoint differs from this run."""
        wanted = {k: v for k, v in expected.items() if k != "key"}
        saved = {k: payload.get(k, "<absent>") for k in wanted}
        if isinstance(saved["train_config"], Mapping):
            saved["train_config"] = {k: v for k, v in saved["train_config"].items()
                                     if k not in RUNTIME_FIELDS}
        diffs = _differences(saved, wanted)
        if diffs:
            shown = "; ".join(f"{d}: checkpoint {_short(_lookup(saved, d))}, "
                              f"this run {_short(_lookup(wanted, d))}" for d in diffs[:6])
            more = f" (and {len(diffs) - 6} more)" if len(diffs) > 6 else ""
            raise StormBtError(
                f"{path}: checkpoint does not match this run in {', '.join(diffs)}: {shown}{more}; "
                "use the settings and data it was trained with, another checkpoint file (checkpoint=), or "
                "--retrain to overwrite it")

    def fit(self, data: FeatureSet, split: Split) -> "TorchPredictor":
        cfg = self.train_config
        expected = self._payload_expected(data, split)
        path = self.cache_path(expected["key"])
        with torch_threads(cfg.num_threads):
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
                    self.train_result, self.source = payload.get("train_log"), str(path)
                    log.info("%s: reusing checkpoint %s (trained %s); pass --retrain to train "
                             "again", self.name, path, payload.get("saved_at", "earlier"))
                    return self
                log.warning("%s: cached %s has another key; retraining", self.name, path)
            result = train_model(model, data, split, self.history, cfg, name=self.name)
        self.model, self.tickers = model, tuple(data.tickers)
        self.train_result, self.source = result.as_dict(), "trained"
        if path is not None:
            self._save(path, model, expected, result)
        return self

    def _save(self, path: Path, model: nn.Module, expected: dict, result: TrainResult) -> None:
        payload = {
            "format": CHECKPOINT_FORMAT,
            **expected,
            "train_config": self.train_config.as_dict(),
            "versions": _versions(),
            "saved_at": pd.Timestamp.now(tz="UTC").isoformat(timespec="seconds"),
            "train_log": result.as_dict(),
            "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        }
        save_checkpoint(path, payload)
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


def apply_overrides(model_config, train_config: TrainConfig, overrides: Mapping, model_name: str):
    """Route ``name=value`` overrides to the model or the train config; unknown names fail.

    A ``None`` value keeps the preset's setting (so CLI flags left unset change nothing).
    """
    model_fields = {f.name for f in fields(model_config)}
    train_fields = {f.name for f in fields(train_config)}
    to_model, to_train = {}, {}
    for key, value in overrides.items():
        if value is None:
            continue
        if key in model_fields:
            to_model[key] = value
        elif key in train_fields:
            to_train[key] = value
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
                         model_config=_plain(asdict(model_cfg)), history=model_cfg.history,
                         train=train_cfg, cache_dir=cache_dir, checkpoint=checkpoint,
                         force_retrain=force_retrain)

    def make_model(self, config, dims: DataDims) -> nn.Module:
        raise NotImplementedError

    def config(self) -> dict:
        return {**super().config(), "preset": self.preset}


def _plain(value):
    """Tuples become lists (as they come back from JSON), recursively."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value
