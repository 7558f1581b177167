"""Model inputs: scaled features, next-day labels, chronological splits and windows.

- Features: `storm_bt.features.compute_features` on the whole panel (each row uses only its
  own and earlier rows), then ONE causal block scaler over the whole timeline
  (`storm_bt.scaler.causal_block_scale`, STORM_SPEC D14 fixed).
- Label (D15 fixed): ``y[t, s] = adj_close[t+1, s] / adj_close[t, s] - 1``, the next-day
  total return; NaN on the last date and wherever day t or t+1 is not a real observation.
- A sample "ends" at date index e: its window holds rows e-T+1 .. e and its target is y[e].
  A training sample must have its label fully inside the split (date e+1 <= split end), so
  no training label peeks into the next period.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from storm_bt.data.panel import PRICE_FIELDS, Panel
from storm_bt.errors import StormBtError
from storm_bt.features import FeatureConfig, compute_features
from storm_bt.scaler import causal_block_scale


@dataclass(frozen=True)
class Split:
    """Chronological train / valid / test date ranges (inclusive)."""

    train_start: pd.Timestamp
    valid_start: pd.Timestamp
    test_start: pd.Timestamp
    test_end: pd.Timestamp

    @property
    def train(self) -> tuple[pd.Timestamp, pd.Timestamp]:
        return self.train_start, self.valid_start - pd.Timedelta(days=1)

    @property
    def valid(self) -> tuple[pd.Timestamp, pd.Timestamp]:
        return self.valid_start, self.test_start - pd.Timedelta(days=1)

    @property
    def test(self) -> tuple[pd.Timestamp, pd.Timestamp]:
        return self.test_start, self.test_end

    def as_dict(self) -> dict[str, str]:
        return {k: str(v.date()) for k, v in asdict(self).items()}


#: Defaults for data that covers them (STORM_SPEC D13 fixed).
PAPER_SPLIT = dict(train_start="2008-04-01", valid_start="2019-04-01", test_start="2021-04-01")
#: Defaults for the embedded skfolio sample (1990-01-02 .. 2022-12-28): 10 years of
#: training, 2 of validation, and a test period with the 2020 crash and the 2022 bear market.
EMBEDDED_SPLIT = dict(train_start="2008-01-01", valid_start="2018-01-01", test_start="2020-01-01")


def make_split(dates: pd.DatetimeIndex, train_start=None, valid_start=None, test_start=None,
               test_end=None, min_train_days: int = 252, min_history: int = 0) -> Split:
    """Validate the four split dates against the data's calendar.

    Missing dates default to `PAPER_SPLIT` when the data covers it (from its training start
    to at least two years after its test start), else to `EMBEDDED_SPLIT`; `test_end`
    defaults to the last date of the data.
    """
    first, last = dates[0], dates[-1]
    covers_paper = first <= pd.Timestamp(PAPER_SPLIT["train_start"]) and \
        last >= pd.Timestamp(PAPER_SPLIT["test_start"]) + pd.DateOffset(years=2)
    defaults = PAPER_SPLIT if covers_paper else EMBEDDED_SPLIT
    given = dict(train_start=train_start, valid_start=valid_start, test_start=test_start,
                 test_end=test_end)
    stamps = {}
    for key, value in given.items():
        if value is None:
            value = defaults.get(key, last)
        try:
            stamps[key] = pd.Timestamp(value)
        except (ValueError, TypeError):
            raise StormBtError(f"--{key.replace('_', '-')} {value!r} is not a date; use YYYY-MM-DD") from None
    order = ["train_start", "valid_start", "test_start", "test_end"]
    for a, b in zip(order, order[1:]):
        if not stamps[a] < stamps[b]:
            raise StormBtError(
                f"--{a.replace('_', '-')} {stamps[a].date()} must be before "
                f"--{b.replace('_', '-')} {stamps[b].date()}")
    for key in order:
        if not first <= stamps[key] <= last:
            raise StormBtError(
                f"--{key.replace('_', '-')} {stamps[key].date()} is outside the data "
                f"({first.date()} .. {last.date()}); choose a date inside it")
    n_before = int(dates.searchsorted(stamps["train_start"]))
    if n_before < min_history:
        raise StormBtError(
            f"too little history before --train-start {stamps['train_start'].date()}: "
            f"{n_before} days, need {min_history}; move --train-start later")
    n_train = int(((dates >= stamps["train_start"]) & (dates < stamps["valid_start"])).sum())
    if n_train < min_train_days:
        raise StormBtError(
            f"too little training data: {n_train} days between --train-start "
            f"{stamps['train_start'].date()} and --valid-start {stamps['valid_start'].date()}, "
            f"need at least {min_train_days}")
    return Split(**stamps)


@dataclass
class FeatureSet:
    """Everything a predictor sees, on the panel's calendar.

    Attributes:
        dates, tickers: the axes.
        feature_names: F names; the first P are the normalised price fields (`price_names`).
        features: float32 (D, S, F), causally scaled.
        price_mean, price_std: float32 (D, S, P), the scaler's statistics of the price
            fields, to map normalised prices back to dollars.
        labels: float32 (D, S), next-day total return (NaN where unknown).
        valid: bool (D, S), True where the stock has a real row on date t.
    """

    dates: pd.DatetimeIndex
    tickers: tuple[str, ...]
    feature_names: list[str]
    price_names: list[str]
    features: np.ndarray
    price_mean: np.ndarray
    price_std: np.ndarray
    labels: np.ndarray
    valid: np.ndarray
    fingerprint: str = ""

    @property
    def n_features(self) -> int:
        return self.features.shape[2]

    def date_index(self, start, end) -> np.ndarray:
        """Indices of dates in [start, end]."""
        lo = int(self.dates.searchsorted(pd.Timestamp(start), side="left"))
        hi = int(self.dates.searchsorted(pd.Timestamp(end), side="right"))
        return np.arange(lo, hi)

    def sample_ends(self, start, end, history: int, labelled: bool = True) -> np.ndarray:
        """End indices e of windows whose end date lies in [start, end].

        Requires a full window (e >= history - 1). With ``labelled`` the label must be known
        and lie inside the range too (date e+1 <= end), and at least one stock must have it.
        """
        idx = self.date_index(start, end)
        idx = idx[idx >= history - 1]
        if labelled:
            hi = int(self.dates.searchsorted(pd.Timestamp(end), side="right"))
            idx = idx[idx + 1 < hi]
            idx = idx[np.isfinite(self.labels[idx]).any(axis=1)]
        return idx

    def windows(self, ends: np.ndarray, history: int) -> np.ndarray:
        """Windows (N, T, S, F) ending at `ends`, gathered from a strided view (a copy)."""
        view = np.lib.stride_tricks.sliding_window_view(self.features, history, axis=0)
        # view: (D-T+1, S, F, T) -> (N, T, S, F)
        return np.ascontiguousarray(np.moveaxis(view[ends - history + 1], -1, 1))

    def price_windows(self, ends: np.ndarray, history: int) -> tuple[np.ndarray, np.ndarray]:
        """(mean, std) windows (N, T, S, P) of the price fields' scaler statistics."""
        out = []
        for arr in (self.price_mean, self.price_std):
            view = np.lib.stride_tricks.sliding_window_view(arr, history, axis=0)
            out.append(np.ascontiguousarray(np.moveaxis(view[ends - history + 1], -1, 1)))
        return out[0], out[1]


def next_day_return(panel: Panel) -> np.ndarray:
    """y[t] = adj_close[t+1]/adj_close[t] - 1 where both days are real rows, else NaN."""
    adj = panel.array("adj_close")
    y = np.full(adj.shape, np.nan)
    ok = panel.mask[:-1] & panel.mask[1:]
    with np.errstate(invalid="ignore", divide="ignore"):
        y[:-1] = np.where(ok, adj[1:] / adj[:-1] - 1.0, np.nan)
    return y


def build_feature_set(panel: Panel, config: FeatureConfig | None = None,
                      block: int = 64) -> FeatureSet:
    """Features, scaler and labels for the whole panel (every row causal)."""
    raw, names = compute_features(panel, config or FeatureConfig())
    scaled = causal_block_scale(raw, block=block)
    price_names = [f for f in PRICE_FIELDS if f in panel.fields]
    p = len(price_names)
    if names[:p] != price_names:
        raise AssertionError(f"features must start with the price fields {price_names}, got {names[:p]}")
    return FeatureSet(
        dates=panel.dates, tickers=panel.tickers, feature_names=list(names),
        price_names=price_names,
        features=scaled.values.astype(np.float32, copy=False),
        price_mean=np.ascontiguousarray(scaled.mean[:, :, :p], dtype=np.float32),
        price_std=np.ascontiguousarray(scaled.std[:, :, :p], dtype=np.float32),
        labels=next_day_return(panel).astype(np.float32),
        valid=panel.mask.copy(),
        fingerprint=panel.fingerprint(),
    )
