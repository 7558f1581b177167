"""The data an experiment runs on: which prices, which tickers and which split.

`DataConfig` holds the user's choices as plain values (a notebook builds one directly, the
CLI from flags); `load_experiment_data` turns it into the panel, cut at the end of the test
period so that nothing after it is ever read, and the validated chronological `Split`.

A point-in-time universe (``membership``, `storm_bt.data.membership`): a stock is scored,
traded and trained on at t only while it is an index member at t. `restrict_to_members`
hides the labels of non-member days (no training sample, no score) and `members_only`
removes their predictions (weight 0: a book sells a stock that leaves the index). The
prices themselves stay, so a held stock can always be sold and its features keep their
history.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from storm_bt.data import EMBEDDED, Panel, load_panel
from storm_bt.errors import StormBtError
from storm_bt.features.dataset import FeatureSet, Split, make_split

#: Fewest training days a split may have (the models' 64-day windows and a year to learn).
MIN_TRAIN_DAYS = 252
#: Days of history a split chosen from the data leaves before its training start, so that
#: the first training sample has a full window (the neural models' 64 days).
MIN_HISTORY = 64


@dataclass(frozen=True)
class DataConfig:
    """Prices, ticker subset and split dates (None: the defaults for the data, see `make_split`).

    ``data`` is ``"embedded"``, a path to a long CSV/CSV.gz/Parquet file or a folder of Yahoo
    CSVs. ``tickers`` restricts the universe (None: every ticker in the data).
    """

    data: str = EMBEDDED
    tickers: tuple[str, ...] | None = None
    train_start: str | None = None
    valid_start: str | None = None
    test_start: str | None = None
    test_end: str | None = None
    membership: str | None = None

    def __post_init__(self) -> None:
        if self.membership is not None and not Path(self.membership).is_file():
            raise StormBtError(f"--membership {self.membership}: no such file; give a CSV with "
                               "columns ticker,start_date,end_date")
        if self.tickers is not None:
            if not self.tickers:
                raise StormBtError("--tickers: give at least one ticker")
            object.__setattr__(self, "tickers", tuple(dict.fromkeys(self.tickers)))

    def dates(self) -> tuple[str | None, str | None, str | None, str | None]:
        return self.train_start, self.valid_start, self.test_start, self.test_end


def load_experiment_data(config: DataConfig, min_tickers: int = 2,
                         min_train_days: int = MIN_TRAIN_DAYS) -> tuple[Panel, Split]:
    """The panel (restricted to ``config.tickers``, cut at the test end) and the split."""
    panel = load_panel(config.data, list(config.tickers) if config.tickers else None)
    if len(panel.tickers) < min_tickers:
        raise StormBtError(f"{panel.source}: need at least {min_tickers} tickers, "
                           f"got {len(panel.tickers)}")
    split = make_split(panel.dates, *config.dates(), min_train_days=min_train_days,
                       min_history=MIN_HISTORY)
    return panel.until(split.test_end), split


def membership_frame(config: DataConfig, panel: Panel) -> pd.DataFrame | None:
    """Date x ticker membership on the panel's calendar, or None without ``membership``."""
    if config.membership is None:
        return None
    from storm_bt.data.membership import load_membership

    return load_membership(config.membership, panel)


def restrict_to_members(data: FeatureSet, member: pd.DataFrame | None) -> FeatureSet:
    """The feature set with the label of every non-member (date, stock) hidden (NaN).

    Where that hides a known label, the result records a digest of the hidden pairs
    (``hidden_labels``), which enters the checkpoint key of every model trained on it: a
    point-in-time fit never reuses, and is never reused as, a fit on every label."""
    if member is None:
        return data
    ok = member.reindex(index=data.dates, columns=list(data.tickers)).fillna(False)
    ok = ok.to_numpy(dtype=bool)
    hidden = ~ok & np.isfinite(data.labels)
    if not hidden.any():
        return data
    labels = np.where(ok, data.labels, np.nan).astype(data.labels.dtype)
    digest = hashlib.sha256(np.packbits(hidden).tobytes()).hexdigest()[:16]
    return replace(data, labels=labels, hidden_labels=digest)


def members_only(predictions: pd.DataFrame, member: pd.DataFrame | None) -> pd.DataFrame:
    """Predictions with every non-member (date, stock) removed (NaN)."""
    if member is None:
        return predictions
    ok = member.reindex(index=predictions.index, columns=predictions.columns).fillna(False)
    return predictions.where(ok.to_numpy(dtype=bool))
