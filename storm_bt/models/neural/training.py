"""The one training loop shared by every torch model in storm_bt.

A torch model is an ``nn.Module`` with two methods:

    losses(batch) -> dict[str, Tensor]   # scalar terms; "total" is the one optimised
    predict(batch) -> Tensor (B, S)      # next-day return scores, no label used

Training (STORM_SPEC section 4, with the section 11 CPU schedule):

- samples are the window end indices e of the train range whose label y[e] lies inside it
  (`FeatureSet.sample_ends`), shuffled each epoch and cut into batches (drop_last);
- with ``label_horizon = h`` > 1 the training label is the h-day forward return
  y_h[e] = prod_{j<h} (1 + y[e+j]) - 1 (`features.dataset.with_label_horizon`), and a
  sample needs its h days inside the train range; validation, selection and prediction
  stay on the next-day return;
- with ``stocks_per_step = k``, each step trains on k stocks drawn uniformly without
  replacement (a seeded generator of its own), so a step costs O(B T k F) whatever the
  universe; validation and prediction always score every stock; a model that
  ``reads_universe`` (STORM with cs_context="universe") also gets, with a subset, every
  stock's per-date feature mean and covariance, so its market summary does not depend on
  the stocks drawn;
- AdamW(lr, betas, weight_decay, eps) on all parameters (`make_optimizer`); the learning
  rate rises linearly from 0 over the first ``warmup_frac`` of all steps and then falls
  linearly to 0,
  stepped per batch: lr_k = lr * min(k / W, (K - k) / (K - W)) for K steps, W warmup steps;
- gradients clipped to a global L2 norm of ``grad_clip``;
- after each epoch, the mean daily RankIC on the valid range,
  RankIC_t = Spearman(rank y_hat[t, :], rank y[t, :]) over the stocks with a known label,
  is smoothed over the last k = min(``select_smooth``, epochs) epochs,
  s_e = mean(IC_{e-k+1..e}); once warmup is over and the window is full (e * steps >=
  warmup steps and e >= k, or the last epoch), s_e drives early stopping (``patience``
  such epochs without a new best) and the weights of the best s_e epoch are restored
  (``valid_stocks = k``: the RankIC is taken across a fixed seeded subset of k stocks);
- with ``weight_ema = d``, a bias-corrected moving average of the parameters
  (`averaging.ParameterAverage`: theta_bar_k = a_k / (1 - d^k), a_k = d a_{k-1} + (1 - d)
  theta_k) is what validation scores, selection compares and the restored weights hold;
  training itself always steps the live parameters;
- a model with ``diagnostics(batch)`` reports, after every epoch, its diagnostics on a
  fixed training batch of 8 windows (for STORM: each loss term's share of the encoder
  gradient, the KL, the posterior's RankIC on the training labels), logged with the
  codebook usage.
"""
from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from storm_bt.features.dataset import FeatureSet, Split, with_label_horizon
from storm_bt.errors import StormBtError
from storm_bt.evaluation.ic import daily_rank_ic
from storm_bt.models.neural import config_checks as checks
from storm_bt.models.neural.averaging import ParameterAverage
from storm_bt.models.neural.batch import Batch, make_batch
from storm_bt.models.neural.distributed import ddp_wrap, is_main_process, shard, world_size
from storm_bt.runtime import resolve_device, retained_heap, seed_everything

log = logging.getLogger(__name__)

#: At most this many (window, stock) pairs per inference forward pass: 64 Dow 30 windows,
#: 8 S&P 500 windows (x alone is 8 x 64 x 501 x 152 floats = 156 MB).
PREDICT_STOCK_WINDOWS = 4096
#: Training windows of the fixed diagnostics batch (one backward pass per loss term on it)
DIAGNOSTIC_WINDOWS = 8
#: Stock sampling of the tiny/small/paper presets of every neural model: each training step
#: draws 64 stocks (a step over the S&P 500 then costs what a step over 64 stocks costs) and
#: validation ranks 128 fixed stocks; neither changes anything on the Dow 30.
PRESET_SAMPLING: dict = {"stocks_per_step": 64, "valid_stocks": 128}

#: TrainConfig fields that change how fast training runs, not what it produces.
RUNTIME_FIELDS: tuple[str, ...] = ("device", "num_threads", "progress", "diagnostics")
#: TrainConfig fields added after checkpoints existed, with their defaults: in a checkpoint's
#: key (and its recorded train settings) only when set to something else.
KEYED_WHEN_SET: dict[str, object] = {"weight_ema": 0.0, "label_horizon": 1}


@dataclass(frozen=True)
class TrainConfig:
    """Optimiser, schedule, early stopping and runtime settings (one place for defaults)."""

    epochs: int = 15
    batch_size: int = 32
    lr: float = 5e-4
    betas: tuple[float, float] = (0.9, 0.95)
    weight_decay: float = 0.05
    eps: float = 1e-6
    warmup_frac: float = 0.1
    #: global gradient-norm clip; None or 0 disables it
    grad_clip: float | None = 1.0
    #: epochs without a better valid RankIC before stopping; None (or 0) trains every epoch
    patience: int | None = 5
    seed: int = 1337
    #: a seeded random subset of the training windows above this many (None: all)
    max_train_samples: int | None = None
    #: train each step on this many randomly drawn stocks (None: all); prediction covers all
    stocks_per_step: int | None = None
    #: score validation on this many stocks (a fixed seeded subset; None: all), for model
    #: selection on a large universe; predict always scores every stock
    valid_stocks: int | None = None
    #: epochs the valid RankIC is averaged over for model selection (1 = no smoothing)
    select_smooth: int = 3
    #: per-epoch model diagnostics on a fixed training batch (when the model has them)
    diagnostics: bool = True
    #: decay of an exponential moving average of the parameters (`averaging`), used for
    #: validation, model selection and the restored weights; 0 = the live weights
    weight_ema: float = 0.0
    #: trading days h of the training label: the h-day forward return (1: next day);
    #: validation and selection always score the next-day return
    label_horizon: int = 1
    num_threads: int = 2
    device: str = "auto"
    progress: bool = True

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise StormBtError(f"epochs={self.epochs}: train for at least 1 epoch")
        if self.batch_size < 1:
            raise StormBtError(f"batch_size={self.batch_size}: use a positive batch size")
        if not 0.0 <= self.warmup_frac < 1.0:
            raise StormBtError(f"warmup_frac={self.warmup_frac}: use a fraction in [0, 1)")
        if self.stocks_per_step is not None and self.stocks_per_step < 2:
            raise StormBtError(f"stocks_per_step={self.stocks_per_step}: use at least 2 "
                               "stocks per step (a cross-section), or None for all")
        if self.valid_stocks is not None and self.valid_stocks < 2:
            raise StormBtError(f"valid_stocks={self.valid_stocks}: use at least 2 stocks, "
                               "or None for all")
        if self.select_smooth < 1:
            raise StormBtError(f"select_smooth={self.select_smooth}: use 1 or more epochs")
        if not 0.0 <= self.weight_ema < 1.0:
            raise StormBtError(f"weight_ema={self.weight_ema}: use a decay in [0, 1) "
                               "(0 = no averaging)")
        if self.label_horizon < 1:
            raise StormBtError(f"label_horizon={self.label_horizon}: use 1 or more trading "
                               "days")
        if self.device not in ("auto", "cpu", "cuda"):
            raise StormBtError(f"device={self.device!r}: use 'auto', 'cpu' or 'cuda'")
        checks.positive(self, "lr", "eps")
        checks.not_negative(self, "weight_decay")
        checks.at_least(self, 1, "num_threads")
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            raise StormBtError(f"betas={tuple(self.betas)}: use two numbers in [0, 1), e.g. "
                               "(0.9, 0.95)")
        if self.grad_clip is not None and not (math.isfinite(self.grad_clip)
                                               and self.grad_clip >= 0):
            raise StormBtError(f"grad_clip={self.grad_clip}: use a finite norm >= 0 (None or "
                               "0: no clipping)")
        if self.patience is not None and self.patience < 0:
            raise StormBtError(f"patience={self.patience}: use 1 or more epochs (None or 0: "
                               "train every epoch)")
        if self.max_train_samples is not None and self.max_train_samples < 1:
            raise StormBtError(f"max_train_samples={self.max_train_samples}: use 1 or more "
                               "windows, or None for all")

    def as_dict(self) -> dict:
        """Plain types only (stored in checkpoints loaded with ``weights_only=True``)."""
        d = asdict(self)
        d["betas"] = [float(b) for b in self.betas]
        return d

    def identity(self) -> dict:
        """The settings that define the trained weights (`train_identity`)."""
        return train_identity(self.as_dict())


def keyed_when_set(settings: Mapping, defaults: Mapping) -> dict:
    """``settings`` without each field of ``defaults`` that holds its default value: a
    field added after checkpoints existed enters their keys only when it is set, so fits
    that do not use it keep the keys they had before it existed."""
    return {k: v for k, v in settings.items() if not (k in defaults and v == defaults[k])}


def train_identity(settings: Mapping) -> dict:
    """The train settings that define the trained weights: runtime settings left out, and a
    field of `KEYED_WHEN_SET` only when it differs from its default (`keyed_when_set`)."""
    return keyed_when_set({k: v for k, v in settings.items() if k not in RUNTIME_FIELDS},
                          KEYED_WHEN_SET)


@dataclass
class EpochLog:
    epoch: int
    losses: dict[str, float]
    valid_rank_ic: float
    lr: float
    seconds: float
    codebook: dict = field(default_factory=dict)
    #: mean valid RankIC over the last `select_smooth` epochs (the selection score)
    smoothed_rank_ic: float = float("nan")
    diagnostics: dict = field(default_factory=dict)


@dataclass
class TrainResult:
    """What happened during training (the model itself is trained in place)."""

    epochs: list[EpochLog]
    best_epoch: int
    #: the raw valid RankIC of the restored epoch, and its smoothed selection score
    best_valid_rank_ic: float
    n_train: int
    n_valid: int
    seconds: float
    best_smoothed_rank_ic: float = float("nan")

    def as_dict(self) -> dict:
        """Plain values (stored in checkpoints as ``train_log``)."""
        return asdict(self)


# ----------------------------------------------------------------- prediction
def reads_universe(model: nn.Module) -> bool:
    """Whether the model's batches of a stock subset carry the universe's cross-section
    (a model sets ``reads_universe = True``, STORM with cs_context="universe")."""
    return bool(getattr(model, "reads_universe", False))


def listed_columns(data: FeatureSet, ends: np.ndarray,
                   stocks: np.ndarray | None = None) -> np.ndarray | None:
    """The columns of ``stocks`` (every stock when None) listed by the earliest of ``ends``
    (`FeatureSet.listed`): the stocks a batch of those windows may hold. None when all of
    them are, so that such a batch is exactly what it was before listings were checked."""
    cols = np.arange(len(data.tickers)) if stocks is None else np.asarray(stocks)
    listed = data.listed(int(np.min(ends)))[cols]
    return None if listed.all() else cols[listed]


def listed_runs(data: FeatureSet, ends: np.ndarray, stocks: np.ndarray | None = None):
    """Split the sorted ``ends`` into runs over which the listed columns of ``stocks`` do
    not change: yields (lo, hi, positions), ``positions`` the listed columns' places among
    ``stocks`` (None: all of them). A stock is listed from its first row on, so the set only
    grows, and each run's windows can be one batch of the same stocks."""
    cols = np.arange(len(data.tickers)) if stocks is None else np.asarray(stocks)
    first = data.first_rows[cols]
    counts = (first[None, :] <= np.asarray(ends)[:, None]).sum(axis=1)
    cuts = np.flatnonzero(np.diff(counts)) + 1
    for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, len(ends)]):
        if lo == hi:
            continue
        listed = first <= ends[lo]
        yield int(lo), int(hi), (None if listed.all() else np.flatnonzero(listed))


def predict_unlabelled_batch(data: FeatureSet, ends: np.ndarray, history: int,
                             stocks: np.ndarray | None = None, universe: bool = False) -> Batch:
    """A batch for prediction that carries no label information.

    ``y`` is zero and ``label_mask`` is the stocks' validity on the decision date (known
    at t), not whether the label exists (which needs day t+1).
    """
    batch = make_batch(data, ends, history, stocks, universe)
    batch.y = torch.zeros_like(batch.y)
    valid = data.valid[ends] if stocks is None else data.valid[ends][:, stocks]
    batch.label_mask = torch.from_numpy(np.array(valid, dtype=bool, copy=True))
    return batch


def unlabelled_batches(data: FeatureSet, ends: np.ndarray, history: int, batch_size: int,
                       device: torch.device, stocks: np.ndarray | None = None,
                       universe: bool = False):
    """`predict_unlabelled_batch` over the sorted ``ends`` in chunks of at most
    ``batch_size`` windows, each moved to ``device``: the one inference loop of predict,
    factors and the stacked read. Yields (lo, batch, positions): the chunk's first window
    in ``ends``, and the places among ``stocks`` (every stock when None) of the stocks the
    batch holds, those listed by the chunk's windows (`listed_runs`; None: all of them).
    A stock that is not listed yet gets no score: it is not in the batch."""
    cols = None if stocks is None else np.asarray(stocks)
    for run_lo, run_hi, positions in listed_runs(data, ends, cols):
        held = cols if positions is None else (
            positions if cols is None else cols[positions])
        for lo in range(run_lo, run_hi, batch_size):
            hi = min(lo + batch_size, run_hi)
            yield lo, predict_unlabelled_batch(data, ends[lo: hi], history, held,
                                               universe).to(device), positions


@torch.no_grad()
def predict_windows(model: nn.Module, data: FeatureSet, ends: np.ndarray, history: int,
                    batch_size: int, device: torch.device,
                    stocks: np.ndarray | None = None) -> np.ndarray:
    """Scores (N, S) of the windows ending at ``ends`` (of the columns ``stocks`` only,
    when given), in eval mode, without labels; a model that ``reads_universe`` gets the
    universe's cross-section with a subset."""
    universe = reads_universe(model)
    was_training = model.training
    model.eval()
    width = len(data.tickers) if stocks is None else len(stocks)
    out = np.full((len(ends), width), np.nan, dtype=np.float32)   # NaN: not listed yet
    try:
        for lo, batch, positions in unlabelled_batches(data, ends, history, batch_size,
                                                       device, stocks, universe):
            scores = model.predict(batch).float().cpu().numpy()
            rows = slice(lo, lo + len(scores))
            if positions is None:
                out[rows] = scores
            else:
                out[rows, positions] = scores
    finally:
        model.train(was_training)
    return out


# ----------------------------------------------------------------- schedule
def warmup_linear_schedule(optimizer: torch.optim.Optimizer, warmup_steps: int,
                           total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """lr factor k/W during warmup, then (K-k)/(K-W) down to 0 (HF's linear schedule)."""
    def factor(step: int) -> float:
        if step < warmup_steps:
            return step / max(1, warmup_steps)
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


# ----------------------------------------------------------------- the loop
def _train_ends(data: FeatureSet, split: Split, history: int, cfg: TrainConfig) -> np.ndarray:
    ends = data.sample_ends(*split.train, history)
    if len(ends) == 0:
        lo, hi = (d.date() for d in split.train)
        h = data.label_horizon
        label = f"whose {h}-day label ends inside it and " if h > 1 else ""
        fix = "; or lower label_horizon" if h > 1 else ""
        raise StormBtError(
            f"no training windows: the train range {lo} .. {hi} has no labelled date {label}"
            f"with {history} days of history before it; move --train-start or --valid-start"
            f"{fix}")
    if cfg.max_train_samples and len(ends) > cfg.max_train_samples:
        rng = np.random.default_rng(cfg.seed)
        ends = np.sort(rng.choice(ends, cfg.max_train_samples, replace=False))
    return ends


def _valid_ends(data: FeatureSet, split: Split, history: int) -> np.ndarray:
    ends = data.sample_ends(*split.valid, history)
    if len(ends) == 0:
        lo, hi = (d.date() for d in split.valid)
        raise StormBtError(
            f"no validation windows: the valid range {lo} .. {hi} has no labelled date; "
            "move --valid-start earlier or --test-start later")
    return ends


def window_rank_ic(model: nn.Module, data: FeatureSet, ends: np.ndarray, history: int,
                   batch_size: int, device: torch.device,
                   stocks: np.ndarray | None = None) -> pd.Series:
    """Daily RankIC of the model's scores on the windows ending at ``ends`` (across the
    columns ``stocks`` only, when given), indexed by the windows' dates."""
    pred = predict_windows(model, data, ends, history, batch_size, device, stocks)
    cols = np.arange(len(data.tickers)) if stocks is None else np.asarray(stocks)
    dates, tickers = data.dates[ends], [data.tickers[i] for i in cols]
    return daily_rank_ic(pd.DataFrame(pred, index=dates, columns=tickers),
                         pd.DataFrame(data.labels[ends][:, cols], index=dates, columns=tickers))


def valid_rank_ic(model: nn.Module, data: FeatureSet, ends: np.ndarray, history: int,
                  batch_size: int, device: torch.device,
                  stocks: np.ndarray | None = None) -> float:
    """Mean of `window_rank_ic` (NaN when no day can be scored)."""
    ic = window_rank_ic(model, data, ends, history, batch_size, device, stocks)
    return float(ic.mean()) if len(ic) else float("nan")


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW(lr, betas, eps, weight_decay) on every parameter of ``model``, with the
    multi-tensor ("foreach") update: the same numbers as the per-parameter loop, bit for
    bit, in fewer, larger kernel calls (a STORM step has some 200 parameter tensors)."""
    return torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=tuple(cfg.betas),
                             eps=cfg.eps, weight_decay=cfg.weight_decay, foreach=True)


def train_step(model: nn.Module, batch: Batch, optimizer: torch.optim.Optimizer,
                scheduler: torch.optim.lr_scheduler.LambdaLR,
                grad_clip: float | None) -> dict[str, float]:
    """One optimiser step on ``batch``; returns the loss terms as floats."""
    terms = model.losses(batch)
    total = terms["total"]
    if not torch.isfinite(total):
        raise StormBtError(
            f"training diverged: the loss is {total.item()} "
            f"({', '.join(f'{k}={v.item():.4g}' for k, v in terms.items())}); lower the "
            "learning rate (the lr setting) or check the input data for extreme values")
    optimizer.zero_grad(set_to_none=True)
    total.backward()
    if grad_clip:
        nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    scheduler.step()
    return {k: float(v.detach()) for k, v in terms.items()}


def train_model(model: nn.Module, data: FeatureSet, split: Split, history: int,
                cfg: TrainConfig, name: str = "model") -> TrainResult:
    """Train ``model`` in place on ``split.train``; early-stop on ``split.valid`` RankIC.

    The model must already be built (after ``seed_everything(cfg.seed)`` for a reproducible
    initialisation); it is moved to the configured device and left there, in eval mode,
    holding the weights of its best validation epoch. Freed memory stays in the heap while
    it trains (`storm_bt.runtime.retained_heap`: the same numbers, faster steps).
    """
    with retained_heap():
        return _train_model(model, data, split, history, cfg, name)


def _train_model(model: nn.Module, data: FeatureSet, split: Split, history: int,
                 cfg: TrainConfig, name: str) -> TrainResult:
    """`train_model`'s loop."""
    device = resolve_device(cfg.device)
    # the labels the model fits (h-day returns with label_horizon); validation scores `data`
    train_data = with_label_horizon(data, cfg.label_horizon)
    train_ends = _train_ends(train_data, split, history, cfg)
    valid_ends = _valid_ends(data, split, history)
    batch_size = min(cfg.batch_size, len(train_ends))
    if batch_size < cfg.batch_size:
        log.warning("%s: only %d training windows, fewer than batch_size=%d; using one batch "
                    "per epoch", name, len(train_ends), cfg.batch_size)
    steps_per_epoch = len(train_ends) // batch_size
    total_steps = steps_per_epoch * cfg.epochs
    warmup_steps = int(round(cfg.warmup_frac * total_steps))

    seed_everything(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    stock_rng = np.random.default_rng([cfg.seed, 1])
    n_stocks = len(data.tickers)
    subset = cfg.stocks_per_step if cfg.stocks_per_step and cfg.stocks_per_step < n_stocks \
        else None

    def draw_stocks(generator: np.random.Generator, ends: np.ndarray) -> np.ndarray | None:
        """The batch's stocks: ``subset`` of those listed by its earliest window (all of
        them without a subset); None for every stock. Where every stock is listed the draw
        is the one made before listings were checked."""
        listed = listed_columns(train_data, ends)
        if listed is None:
            return None if subset is None else np.sort(generator.choice(n_stocks, subset,
                                                                        replace=False))
        if subset is None or subset >= len(listed):
            return listed
        return np.sort(generator.choice(listed, subset, replace=False))

    valid_subset = np.sort(np.random.default_rng([cfg.seed, 3]).choice(
        n_stocks, cfg.valid_stocks, replace=False)) \
        if cfg.valid_stocks and cfg.valid_stocks < n_stocks else None
    n_valid_stocks = n_stocks if valid_subset is None else len(valid_subset)
    valid_batch = max(1, min(max(batch_size, 32), PREDICT_STOCK_WINDOWS // n_valid_stocks))
    diag_rng = np.random.default_rng([cfg.seed, 2])
    diag_ends = np.sort(diag_rng.choice(train_ends, min(batch_size, DIAGNOSTIC_WINDOWS),
                                        replace=False))
    universe = reads_universe(model)
    diag_batch = make_batch(train_data, diag_ends, history, draw_stocks(diag_rng, diag_ends),
                            universe) \
        if cfg.diagnostics and hasattr(model, "diagnostics") else None
    model.to(device)
    # Under torchrun each rank computes the losses of its shard of every global batch and
    # DDP averages the gradients (`storm_bt.models.neural.distributed`); else this is model.
    trainer = ddp_wrap(model)
    optimizer = make_optimizer(model, cfg)
    scheduler = warmup_linear_schedule(optimizer, warmup_steps, total_steps)
    average = ParameterAverage(model, cfg.weight_ema) if cfg.weight_ema else None
    n_params = sum(p.numel() for p in model.parameters())
    log.info("%s: %d parameters, %d train / %d valid windows, %d steps/epoch x %d epochs on %s"
             "%s", name, n_params, len(train_ends), len(valid_ends), steps_per_epoch, cfg.epochs,
             device, (f", {subset} of {n_stocks} stocks per step" if subset else "")
             + (f", DDP over {world_size()} ranks" if world_size() > 1 else "")
             + (f", parameter EMA {cfg.weight_ema} for selection" if average else "")
             + (f", {cfg.label_horizon}-day training labels" if cfg.label_horizon > 1 else ""))

    history_log: list[EpochLog] = []
    raw_ics: list[float] = []
    smooth = min(cfg.select_smooth, cfg.epochs)
    best_score, best_epoch, best_state, stale = -math.inf, 0, None, 0
    started = time.perf_counter()
    for epoch in range(1, cfg.epochs + 1):
        epoch_start = time.perf_counter()
        model.train()
        if hasattr(model, "reset_codebook_stats"):
            model.reset_codebook_stats()
        order = rng.permutation(train_ends)
        sums: dict[str, float] = {}
        bar = tqdm(range(steps_per_epoch), desc=f"{name} epoch {epoch}/{cfg.epochs}",
                   leave=False, disable=not (cfg.progress and is_main_process()) or None,
                   dynamic_ncols=True)
        for step in bar:
            ends = np.sort(order[step * batch_size: (step + 1) * batch_size])
            batch = make_batch(train_data, shard(ends), history,
                               draw_stocks(stock_rng, ends), universe)
            terms = train_step(trainer, batch.to(device), optimizer, scheduler, cfg.grad_clip)
            if average is not None:
                average.update()
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + v
            bar.set_postfix(loss=f"{terms['total']:.4g}", refresh=False)
        bar.close()
        losses = {k: v / steps_per_epoch for k, v in sums.items()}
        codebook = ({str(k): float(v) for k, v in model.codebook_stats().items()}
                    if hasattr(model, "codebook_stats") else {})
        diagnostics = ({str(k): float(v) for k, v in
                        model.diagnostics(diag_batch.to(device)).items()}
                       if diag_batch is not None else {})
        # validation, selection and the kept weights see the averaged parameters (when
        # weight_ema is set); the next epoch trains on from the live ones
        with _evaluated(average):
            ic = valid_rank_ic(model, data, valid_ends, history, valid_batch, device,
                               valid_subset)
        raw_ics.append(ic if math.isfinite(ic) else -math.inf)
        window = raw_ics[-smooth:]
        smoothed = float(np.mean(window)) if all(map(math.isfinite, window)) else -math.inf
        entry = EpochLog(epoch, losses, ic, float(optimizer.param_groups[0]["lr"]),
                         time.perf_counter() - epoch_start, codebook, smoothed, diagnostics)
        history_log.append(entry)
        log.info("%s epoch %d/%d: %s | valid RankIC %.4f (smoothed %.4f) | %.1fs%s%s", name,
                 epoch, cfg.epochs, " ".join(f"{k}={v:.4g}" for k, v in losses.items()), ic,
                 smoothed, entry.seconds, _format_stats(codebook), _format_stats(diagnostics))
        eligible = (epoch * steps_per_epoch >= warmup_steps and epoch >= smooth) \
            or epoch == cfg.epochs
        if not eligible:
            continue
        if best_state is None or smoothed > best_score:
            best_score, best_epoch, stale = smoothed, epoch, 0
            with _evaluated(average):
                best_state = {k: v.detach().to("cpu", copy=True)
                              for k, v in model.state_dict().items()}
        else:
            stale += 1
            if cfg.patience and stale >= cfg.patience:
                log.info("%s: early stop after epoch %d (best smoothed valid RankIC %.4f at "
                         "epoch %d)", name, epoch, best_score, best_epoch)
                break
    model.load_state_dict(best_state)
    model.eval()
    seconds = time.perf_counter() - started
    best_ic = history_log[best_epoch - 1].valid_rank_ic
    log.info("%s: trained in %.1fs; restored epoch %d (valid RankIC %.4f, smoothed %.4f)",
             name, seconds, best_epoch, best_ic, best_score)
    return TrainResult(history_log, best_epoch, float(best_ic), len(train_ends),
                       len(valid_ends), seconds, float(best_score))


def _evaluated(average: ParameterAverage | None):
    """The weights to score and keep: the averaged ones with ``weight_ema``, else the live."""
    return average.applied() if average is not None else nullcontext()


def _format_stats(stats: dict) -> str:
    if not stats:
        return ""
    return " | " + " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                            for k, v in stats.items())
