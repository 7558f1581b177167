"""STORM behind the `Predictor` interface, and its factors for downstream use.

Three registry names share one class: ``storm`` (both branches), ``storm-ts`` (the
time-series branch alone, STORM w/o CS) and ``storm-cs`` (the cross-sectional branch
alone). A preset (`storm_bt.models.storm.config.PRESETS`) gives the model; the matching
training schedule (STORM_SPEC sections 4 and 11) is below; keyword overrides change
either. The model is sized to the data at fit (S stocks, F features, its price fields).

``factors(data, start, end)`` runs the fitted model without labels on every window ending
in the range and returns `StormModel.factors` per date: the factor embeddings and code
indices of each branch, as numpy arrays whose first axis follows ``dates``:
z_cs, q_cs (N, T, d), codes_cs (N, T); z_ts, q_ts (N, (T/p) S, d), codes_ts (N, (T/p) S),
time-major (index j S + s); phi (N, M, 2d), the M = T + T/p market tokens the factors are
read from (M = T/p with factor_tokens="ts"); mu_z, sigma_z (N, M); with cs_groups G also
z_cs_groups, q_cs_groups (N, G, T, d) and codes_cs_groups (N, G, T), the groups' day tokens.

The model has no weight whose size depends on S: with the presets' ``stocks_per_step``
each training step sees a random subset of the stocks, while `predict` and `factors`
always cover every stock.
"""
from __future__ import annotations

import logging
import warnings

import numpy as np
import pandas as pd
import torch
from torch import nn

from storm_bt.features.dataset import FeatureSet, Split
from storm_bt.features.groups import return_groups
from storm_bt.errors import StormBtError
from storm_bt.evaluation.ic import zscore_rows
from storm_bt.models.storm import StormModel
from storm_bt.models.storm.config import PRESETS as MODEL_PRESETS
from storm_bt.models.storm.config import StormConfig
from storm_bt.models.storm.stacked_read import StackedInputs, StackedRead, fit_stacked_read
from storm_bt.models.storm.read_cache import load_read, read_key, read_path, save_read
from storm_bt.models.neural.distributed import is_main_process
from storm_bt.models.neural.predictor import DataDims, PresetTorchPredictor
from storm_bt.models.neural.training import (PRESET_SAMPLING, TrainConfig, reads_universe,
                                             unlabelled_batches)
from storm_bt.runtime import torch_threads

log = logging.getLogger(__name__)

#: Training schedules per preset: tiny for CI, small = STORM_SPEC 11 (15 epochs, 10% warmup,
#: clip 1.0) with a peak lr of 1e-3 instead of its 5e-4 (D41, chosen on validation),
#: paper/parity = STORM_SPEC 4 (lr 1e-4, 1000 epochs, 100 warmup; the official code never
#: clips and keeps the best epoch without stopping early).
#: tiny/small/paper sample stocks (`PRESET_SAMPLING`: 64 per training step, validation
#: ranked across 128; no effect on the Dow 30); parity trains and validates on every stock.
TRAIN_PRESETS: dict[str, TrainConfig] = {
    "tiny": TrainConfig(epochs=5, lr=5e-4, **PRESET_SAMPLING),
    "small": TrainConfig(epochs=15, lr=1e-3, **PRESET_SAMPLING),
    "paper": TrainConfig(epochs=1000, lr=1e-4, patience=None, **PRESET_SAMPLING),
    "parity": TrainConfig(epochs=1000, lr=1e-4, patience=None, grad_clip=None),
}
PRESETS = {name: (MODEL_PRESETS[name], TRAIN_PRESETS[name]) for name in MODEL_PRESETS}
#: A single branch has nothing to fuse, only its own factor tokens and no cross-sectional
#: mean to subtract: the dual model's fusion, fusion_mlp, factor_tokens and ts_relative (D43
#: in `small`, the fusion in `paper`) do not apply (StormConfig refuses an explicit fusion
#: or ts_relative for one branch).
SINGLE_BRANCH_DEFAULTS = {"fusion": "none", "fusion_mlp": True, "factor_tokens": "both",
                          "ts_relative": False}


class StormPredictor(PresetTorchPredictor):
    """STORM with both branches; see `StormTSPredictor` / `StormCSPredictor`."""

    name = "storm"
    branches = "both"
    #: settings this variant takes instead of the preset's unless given explicitly
    variant_defaults: dict[str, object] = {}
    presets = PRESETS
    #: 2: one stem shared by the branches (D37/D38), the CS parameters renamed;
    #: 3: the IC loss on the prediction path on by default (D39)
    weights_version = 3
    model_keyed_when_set = {"cs_factor_pool": 1, "cs_stem_grad": 1.0, "cs_context": "batch",
                            "factor_tokens": "both", "fusion_mlp": True, "ts_relative": False,
                            "characteristics": False, "characteristics_read": "embedding",
                            "cs_pool_queries": 0, "peer_attention": False, "cs_groups": 0,
                            "stacked_read": "none", "stacked_constant": True,
                            "stacked_select": "holdout"}

    def model_identity(self, model_config) -> dict:
        """As `TorchPredictor.model_identity`; with one branch, recon_cs_scale (which only
        weighs the CS reconstruction beside a TS one) is keyed at 1.0, the value of every
        single-branch checkpoint before D42, and cs_stem_grad is left out, since neither
        changes anything that branch trains, nor is fusion_mlp (nothing to fuse); without a
        CS branch so are cs_context, cs_pool_queries and factor_tokens (the TS tokens are
        then the only factors either way)."""
        identity = super().model_identity(model_config)
        for name in ("stacked_read", "stacked_constant", "stacked_select"):   # fitted after
            identity.pop(name, None)
        if self.branches != "both":
            if "recon_cs_scale" in identity:
                identity["recon_cs_scale"] = 1.0
            identity.pop("cs_stem_grad", None)
            identity.pop("fusion_mlp", None)
        if self.branches == "ts":
            identity.pop("cs_context", None)
            identity.pop("factor_tokens", None)
            identity.pop("cs_pool_queries", None)
        return identity

    def __init__(self, preset: str = "small", **kwargs) -> None:
        branches = kwargs.pop("branches", None)
        if branches not in (None, self.branches):
            raise StormBtError(f"{self.name} uses branches={self.branches!r}, not {branches!r}; "
                               "pick the model storm, storm-ts or storm-cs instead")
        for key, value in self.variant_defaults.items():
            if kwargs.get(key) is None:
                kwargs[key] = value
        super().__init__(preset=preset, branches=self.branches, **kwargs)
        #: the read stacked on the fitted model (stacked_read), once fitted
        self.stacked: StackedRead | None = None

    def fit(self, data: FeatureSet, split: Split) -> "StormPredictor":
        """As `TorchPredictor.fit`; with cs_groups, the stocks' groups come first, from the
        training period's returns alone (`return_groups`), and go into the model; with
        stacked_read, the read is fitted last, on the training period alone, with the
        network frozen (`storm_bt.models.storm.stacked_read`), or reused from beside the
        network's checkpoint (`storm_bt.models.storm.read_cache`)."""
        groups = self.model_config.get("cs_groups", 0)
        self._stock_groups = return_groups(data, split, groups) if groups else None
        super().fit(data, split)
        state = self.model_config.get("stacked_read", "none")
        self.stacked = None if state == "none" else self._stacked_read(data, split, state)
        return self

    def _stacked_read(self, data: FeatureSet, split: Split, state: str) -> StackedRead:
        """The read of the network just fitted: from the cache beside its checkpoint
        (`storm_bt.models.storm.read_cache`) where one is there, else fitted on the training
        period and saved there."""
        constant = self.model_config.get("stacked_constant", True)
        select = self.model_config.get("stacked_select", "holdout")
        path = None
        if self.checkpoint_file is not None:
            key = read_key(self.fit_key, self.model, data.characteristics, state, constant,
                           select=select)
            path = read_path(self.checkpoint_file, key)
            if path.exists() and not self.force_retrain:
                read = load_read(path)
                if read is not None:
                    log.info("%s: reusing stacked read %s", self.name, path)
                    return read
        valid = self.stacked_inputs(data, *split.valid, labelled=True) \
            if select == "valid" else None
        read = fit_stacked_read(state, self.stacked_inputs(data, *split.train, labelled=True),
                                constant=constant, select=valid)
        if path is not None and is_main_process():
            save_read(path, read)
        return read

    def config(self) -> dict:
        """As `TorchPredictor.config`; with a fitted stacked read, also its summary."""
        out = super().config()
        if self.stacked is not None:
            out["stacked_read"] = self.stacked.summary()
        return out

    def predict(self, data: FeatureSet, start, end) -> pd.DataFrame:
        """As `TorchPredictor.predict`; with a stacked read, the model's prior mean plus it."""
        if self.stacked is None:
            return super().predict(data, start, end)
        idx = data.date_index(start, end)
        inputs = self.stacked_inputs(data, start, end, labelled=False)
        values = np.full((len(idx), len(data.tickers)), np.nan)
        values[np.searchsorted(idx, data.dates.get_indexer(inputs.dates))] = \
            self.stacked.scores(inputs)
        return self.frame(data, idx, values)

    def stacked_inputs(self, data: FeatureSet, start, end, labelled: bool) -> StackedInputs:
        """What the stacked read reads for the windows ending in [start, end] (labelled ones
        only, with their labels z-scored per date, when ``labelled``): one labelless pass of
        the model gives mu (NaN where a stock has no row) and the CS day token; the
        characteristics and the market's return of the date (the mean over stocks of the
        h-day return ending there, known at t) come from the data."""
        model = self._check_fitted(data)
        if data.characteristics is None:
            raise StormBtError("stacked_read needs the stocks' characteristics; build the data "
                               "with storm_bt.features.dataset.build_feature_set")
        ends = data.sample_ends(start, end, self.history, labelled=labelled)
        device = next(iter(model.parameters())).device
        universe = reads_universe(model)
        batch_size = self.windows_per_forward(len(data.tickers))
        width = len(data.tickers)
        mu = np.full((len(ends), width), np.nan)     # NaN where a stock is not listed yet
        token = np.zeros((len(ends), model.config.d_model)) if "cs" in model.branches \
            else None
        model.eval()
        with torch_threads(self.train_config.num_threads), torch.no_grad():
            for lo, batch, positions in unlabelled_batches(data, ends, self.history,
                                                           batch_size, device,
                                                           universe=universe):
                m, day_token = model.predict_with_day_token(batch)
                rows = slice(lo, lo + len(m))
                mu[rows, slice(None) if positions is None else positions] = \
                    m.double().cpu().numpy()
                if token is not None:
                    token[rows] = day_token.double().cpu().numpy()
        mu = np.where(data.valid[ends], mu, np.nan)
        h = data.label_horizon
        before = np.where(ends - h >= 0, ends - h, 0)
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)          # a date with no return
            market = np.where(ends - h >= 0, np.nanmean(data.labels[before], axis=1), np.nan)
        y = None
        if labelled:
            y = np.where(data.valid[ends], data.labels[ends], np.nan).astype(np.float64)
            y = zscore_rows(y, flat=np.nan)
        return StackedInputs(
            dates=pd.DatetimeIndex(data.dates[ends]), mu=mu,
            token=token,
            chars=np.asarray(data.characteristics[ends], dtype=np.float64),
            market=np.nan_to_num(market), y=y)

    def make_model(self, config: StormConfig, dims: DataDims) -> nn.Module:
        return StormModel(config.with_data(dims.n_stocks, dims.n_features, dims.price_names),
                          stock_groups=getattr(self, "_stock_groups", None))

    def factors(self, data: FeatureSet, start, end, batch_size: int | None = None) -> dict:
        """Factor embeddings and code indices of each branch for windows ending in [start, end].

        Returns ``{"dates": DatetimeIndex (N,), <name>: ndarray (N, ...)}`` for every output
        of `StormModel.factors`; no label is read.
        """
        model = self._check_fitted(data)
        ends = data.sample_ends(start, end, self.history, labelled=False)
        device = next(iter(model.parameters())).device
        batch_size = batch_size or self.windows_per_forward(len(data.tickers))
        parts: dict[str, list[np.ndarray]] = {}
        n_stocks = len(data.tickers)
        model.eval()
        with torch_threads(self.train_config.num_threads), torch.no_grad():
            for _, batch, positions in unlabelled_batches(data, ends, self.history,
                                                          batch_size, device):
                for key, value in model.factors(batch).items():
                    value = value.detach().cpu().numpy()
                    if positions is not None and key.endswith("_ts"):
                        value = _every_stock(value, positions, n_stocks)
                    parts.setdefault(key, []).append(value)
        out: dict = {"dates": pd.DatetimeIndex(data.dates[ends])}
        out.update({k: np.concatenate(v) for k, v in parts.items()})
        return out


def _every_stock(value: np.ndarray, positions: np.ndarray, n_stocks: int) -> np.ndarray:
    """A TS output of a batch of the stocks at ``positions`` ((B, J k, ...), time-major
    index j k + s) on every stock ((B, J S, ...)): NaN, or code -1, for the stocks not
    listed yet."""
    b, k = value.shape[0], len(positions)
    per_day = value.reshape(b, -1, k, *value.shape[2:])                  # (B, J, k, ...)
    fill = -1 if np.issubdtype(value.dtype, np.integer) else np.nan
    full = np.full((b, per_day.shape[1], n_stocks, *value.shape[2:]), fill, dtype=value.dtype)
    full[:, :, positions] = per_day
    return full.reshape(b, -1, *value.shape[2:])


class StormTSPredictor(StormPredictor):
    """STORM's time-series branch alone (the STORM w/o CS ablation)."""

    name = "storm-ts"
    branches = "ts"
    #: the peer read looks across the stocks of a day, and the stacked read weighs them by
    #: the market's day (the cross-section's mean return): parts of the cross-sectional view
    #: that storm-ts goes without (D44 and D45 in `small`)
    variant_defaults = {**SINGLE_BRANCH_DEFAULTS, "peer_attention": False,
                        "stacked_read": "none"}


class StormCSPredictor(StormPredictor):
    """STORM's cross-sectional branch alone."""

    name = "storm-cs"
    branches = "cs"
    variant_defaults = SINGLE_BRANCH_DEFAULTS
