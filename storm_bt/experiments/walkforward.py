"""Walk-forward refits: the model is refitted through the test period instead of once.

With refits every N trading days, the test days d_0 .. d_M are cut into blocks
B_k = d_{kN} .. d_{kN+N-1}. Block k's model is fitted on

    train  [T_k, V_k - 1]    expanding: T_k = the split's train start; rolling: the W trading
                             days before V_k (``train_window``)
    valid  [V_k, d_{kN} - 1] the L trading days just before the block, L = the length of the
                             split's own validation range (early stopping only)

and predicts the days of B_k only. Every label a fit sees lies before its block's first day,
so a prediction at t never depends on data after t; the schedule depends only on the test
start and N, so cutting the data at any date leaves every earlier block unchanged. Block 0
trains and validates on exactly the split's own ranges, as the single fit does. Each
refit's checkpoint has its own key (its split is part of the key).

The same blocks serve walk-forward *validation* (`pretest_split`): the K blocks just before
the test start, each predicted by its own fit, score a setting out of sample on several
years without touching the test period (benchmarks/walk_forward_validation.py).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from storm_bt.errors import StormBtError
from storm_bt.features.dataset import FeatureSet, Split

log = logging.getLogger(__name__)


def check_refits(refit_every: int | None, train_window: int | None) -> None:
    """The walk-forward flags, checked when a config is built."""
    from storm_bt.experiments.data import MIN_TRAIN_DAYS

    if refit_every is not None and refit_every < 1:
        raise StormBtError(f"--refit-every {refit_every}: use at least 1 trading day")
    if train_window is not None:
        if refit_every is None:
            raise StormBtError("--train-window needs --refit-every")
        if train_window < MIN_TRAIN_DAYS:
            raise StormBtError(f"--train-window {train_window}: use at least {MIN_TRAIN_DAYS} days")


def refit_splits(dates: pd.DatetimeIndex, split: Split, every: int,
                 train_window: int | None = None, min_train_days: int = 252) -> list[Split]:
    """The split of every refit (see the module docstring)."""
    if every < 1:
        raise StormBtError(f"--refit-every {every}: use at least 1 trading day")
    positions = np.flatnonzero((dates >= split.test_start) & (dates <= split.test_end))
    if positions.size == 0:
        raise StormBtError(f"no trading day between {split.test_start.date()} and "
                           f"{split.test_end.date()}")
    valid_len = int(((dates >= split.valid_start) & (dates < split.test_start)).sum())
    splits = []
    for first in range(0, positions.size, every):
        block = positions[first:first + every]
        start = int(block[0])
        valid_pos = start - valid_len
        train_start = split.train_start
        if train_window is not None:
            train_start = max(dates[max(valid_pos - train_window, 0)], split.train_start)
        train_days = int(((dates >= train_start) & (dates < dates[valid_pos])).sum())
        if train_days < min_train_days:
            raise StormBtError(f"refit at {dates[start].date()}: {train_days} training days, "
                               f"need {min_train_days}; use a longer --train-window")
        valid_start, test_start = dates[valid_pos], dates[start]
        if first == 0:  # the split's own ranges: the single fit's training and validation data
            valid_start, test_start = split.valid_start, split.test_start
        splits.append(Split(train_start, valid_start, test_start, dates[int(block[-1])],
                            source="refit", reason=f"refit every {every} days"))
    return splits


def pretest_split(dates: pd.DatetimeIndex, cutoff: pd.Timestamp, folds: int, block_days: int,
                  valid_days: int, train_start: pd.Timestamp) -> Split:
    """The split whose 'test' range is the ``folds`` × ``block_days`` trading days before
    ``cutoff`` less the last one, for walk-forward *validation*: `refit_splits(dates, split,
    block_days)` cuts it into ``folds`` blocks, each predicted by a fit that selects its epoch
    on the ``valid_days`` before the block. The day before ``cutoff`` is left out because
    its label is the return into ``cutoff``, so no block's score reads a price on or after
    ``cutoff`` (the test period's start).
    """
    before = np.flatnonzero(dates < cutoff)
    first = before.size - folds * block_days
    if folds < 1 or block_days < 2 or first - valid_days < 0 \
            or dates[first - valid_days] <= train_start:
        raise StormBtError(f"{folds} folds of {block_days} days before {cutoff.date()}, with "
                           f"{valid_days} validation days, leave no training data after "
                           f"{train_start.date()}; use fewer or shorter folds")
    return Split(train_start, dates[first - valid_days], dates[first], dates[before[-2]],
                 source="walk-forward validation",
                 reason=f"{folds} blocks of {block_days} days before {cutoff.date()}")


@dataclass
class WalkForward:
    """Stitched predictions of every refit, with the refits' splits and settings."""

    predictions: pd.DataFrame
    splits: list[Split]
    fit_seconds: float
    model_config: dict

    def refit_dates(self) -> list[dict[str, str]]:
        return [s.as_dict() for s in self.splits]


def walk_forward(model: str, seed: int, settings, data: FeatureSet, split: Split, every: int,
                 train_window: int | None = None) -> WalkForward:
    """Fit ``model`` once per refit block and stitch the blocks' predictions (in date order)."""
    from tqdm.auto import tqdm

    from storm_bt.experiments.fitting import fit_model

    splits = refit_splits(data.dates, split, every, train_window)
    log.info("%s: %d refits every %d trading days (%s)", model, len(splits), every,
             "expanding window" if train_window is None else f"rolling {train_window} days")
    blocks, seconds, config = [], 0.0, {}
    for refit in tqdm(splits, desc=f"{model} refits", unit="refit"):
        fitted = fit_model(model, seed, settings, data, refit)
        blocks.append(fitted.predictor.predict(data, *refit.test))
        seconds += fitted.fit_seconds
        config = fitted.predictor.config()
    predictions = pd.concat(blocks).sort_index()
    return WalkForward(predictions, splits, seconds, config)
