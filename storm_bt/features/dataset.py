"""Model inputs: scaled features, next-day labels, chronological splits and windows.

- Features: `storm_bt.features.alpha158.compute_features` on the whole panel (each row uses only its
  own and earlier rows), then ONE causal block scaler over the whole timeline
  (`storm_bt.features.scaler.causal_block_scale`, STORM_SPEC D14 fixed).
- Label (D15 fixed): ``y[t, s] = adj_close[t+1, s] / adj_close[t, s] - 1``, the next-day
  total return; NaN on the last date and wherever day t or t+1 is not a real observation.
- A sample "ends" at date index e: its window holds rows e-T+1 .. e and its target is y[e].
  A training sample must have its label fully inside the split (date e+1 <= split end), so
  no training label peeks into the next period.
- A training label of h days (`with_label_horizon`): y_h[e] = prod_{j<h} (1 + y[e+j]) - 1
  = adj_close[e+h] / adj_close[e] - 1; a sample then needs date e+h <= split end.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from functools import cached_property

import numpy as np
import pandas as pd

from storm_bt.data.dates import parse_iso_date
from storm_bt.data.panel import PRICE_FIELDS, Panel
from storm_bt.errors import StormBtError
from storm_bt.features.alpha158 import FeatureConfig, compute_features
from storm_bt.features.characteristics import stock_characteristics
from storm_bt.features.scaler import causal_block_scale

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Split:
    """Chronological train / valid / test date ranges (inclusive).

    `source` and `reason` record how the dates were chosen ("flags", "paper", "embedded"
    or "data"); they are not part of the split's identity (equality, `as_dict`).
    """

    train_start: pd.Timestamp
    valid_start: pd.Timestamp
    test_start: pd.Timestamp
    test_end: pd.Timestamp
    source: str = field(default="flags", compare=False)
    reason: str = field(default="", compare=False)

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
        """The four dates (what a model was trained on: checkpoint keys use this)."""
        return {k: str(getattr(self, k).date()) for k in SPLIT_KEYS}

    def describe(self) -> dict[str, str]:
        """The four dates and how they were chosen, for run records (config.json)."""
        return {**self.as_dict(), "source": self.source, "reason": self.reason}


SPLIT_KEYS = ("train_start", "valid_start", "test_start", "test_end")
#: Defaults for data that covers them (STORM_SPEC D13 fixed).
PAPER_SPLIT = dict(train_start="2008-04-01", valid_start="2019-04-01", test_start="2021-04-01")
#: Defaults for the embedded skfolio sample (1990-01-02 .. 2022-12-28): 10 years of
#: training, 2 of validation, and a test period with the 2020 crash and the 2022 bear market.
EMBEDDED_SPLIT = dict(train_start="2008-01-01", valid_start="2018-01-01", test_start="2020-01-01")
#: A default split is used only if the data runs this long past its test start.
DEFAULT_MIN_TEST_YEARS = 2
#: A split chosen from the data: the last TEST_YEARS (at most TEST_FRACTION of the days) are
#: the test period, the VALID_YEARS before (at most VALID_FRACTION) validation, the rest
#: training. A history of 8 years or more gives 3 / 2 / 3+ years; a shorter one is cut 3:2:3.
TEST_YEARS, VALID_YEARS = 3, 2
TEST_FRACTION, VALID_FRACTION = 3 / 8, 2 / 8
#: Fewest days of validation and of test in a split chosen from a very short history.
MIN_PERIOD_DAYS = 20


def make_split(dates: pd.DatetimeIndex, train_start=None, valid_start=None, test_start=None,
               test_end=None, min_train_days: int = 252, min_history: int = 0) -> Split:
    """The split of `dates` from the dates given (``YYYY-MM-DD``) and defaults for the rest.

    Missing dates come from the first of these that the data covers: `PAPER_SPLIT`, then
    `EMBEDDED_SPLIT` (covered: `min_history` days before the training start, and data
    `DEFAULT_MIN_TEST_YEARS` past the test start); else they are chosen from the data (see
    `TEST_YEARS`), anchored on the dates that were given. `test_end` defaults to the data's
    last date. Given dates are never moved: one outside the data is an error.

    Args:
        dates: the data's calendar (sorted).
        min_train_days: fewest trading days of training the models need.
        min_history: trading days needed before the training start (e.g. a look-back window).

    Raises:
        StormBtError: a date that is not ISO, out of order, outside the data, or too little
            training data or history.
    """
    if len(dates) == 0:
        raise StormBtError("the data has no dates; cannot choose a split")
    first, last = dates[0], dates[-1]
    given = {k: parse_iso_date(v, _flag(k)) for k, v in
             zip(SPLIT_KEYS, (train_start, valid_start, test_start, test_end)) if v is not None}
    end = min(max(given.get("test_end", last), first), last)
    missing = [k for k in SPLIT_KEYS[:3] if k not in given]
    if not missing:
        stamps, source, reason = dict(given), "flags", "train, valid and test starts given"
    else:
        for source, defaults, what in (("paper", PAPER_SPLIT, "the paper's split"),
                                       ("embedded", EMBEDDED_SPLIT, "the embedded sample's split")):
            if _covers(dates, defaults, missing, end, "test_end" in given, min_history):
                stamps = {k: pd.Timestamp(v) for k, v in defaults.items()} | given
                reason = f"defaults of {what}, which the data covers"
                break
        else:
            source = "data"
            stamps, reason = _split_from_data(dates, given, end, min_train_days, min_history)
        if given:
            reason += f" ({', '.join(_flag(k) for k in given)} given)"
    stamps.setdefault("test_end", last)

    def label(key: str) -> str:
        shown = f"{_flag(key)} {stamps[key].date()}"
        if key in given:
            return shown
        origin = "the data's last date" if key == "test_end" else f"default from {source}"
        return f"{shown} ({origin}; set {_flag(key)})"

    def outside(key: str) -> None:
        if not first <= stamps[key] <= last:
            raise StormBtError(f"{label(key)} is outside the data ({first.date()} .. "
                               f"{last.date()}); choose a date inside it")

    for key in given:   # a date given outside the data is named first, whatever its order
        outside(key)
    for a, b in zip(SPLIT_KEYS, SPLIT_KEYS[1:]):
        if not stamps[a] < stamps[b]:
            raise StormBtError(f"{label(a)} must be before {label(b)}")
    for key in SPLIT_KEYS:
        outside(key)
    for start, stop, what in (("valid_start", "test_start", "validation"),
                              ("test_start", "test_end", "test")):
        # validation ends the day before the test period starts; the test period on its end
        ends = dates < stamps[stop] if stop == "test_start" else dates <= stamps[stop]
        n_days = int(((dates >= stamps[start]) & ends).sum())
        if n_days < MIN_PERIOD_DAYS:
            raise StormBtError(
                f"the {what} period from {label(start)} to {label(stop)} has {n_days} trading "
                f"days; give it at least {MIN_PERIOD_DAYS}, so that its scores mean something")
    n_before = int(dates.searchsorted(stamps["train_start"]))
    if n_before < min_history:
        raise StormBtError(
            f"too little history before {label('train_start')}: "
            f"{n_before} days, need {min_history}; move --train-start later")
    n_train = int(((dates >= stamps["train_start"]) & (dates < stamps["valid_start"])).sum())
    if n_train < min_train_days:
        raise StormBtError(
            f"too little training data: {n_train} days between {label('train_start')} and "
            f"{label('valid_start')}, need at least {min_train_days}")
    split = Split(**{k: stamps[k] for k in SPLIT_KEYS}, source=source, reason=reason)
    log.info("split (%s): train %s .. %s, valid %s .. %s, test %s .. %s; %s", source,
             split.train_start.date(), split.train[1].date(), split.valid_start.date(),
             split.valid[1].date(), split.test_start.date(), split.test_end.date(), reason)
    return split


def _flag(key: str) -> str:
    return "--" + key.replace("_", "-")


def _covers(dates: pd.DatetimeIndex, defaults: dict, missing: list[str], end: pd.Timestamp,
            end_given: bool, min_history: int) -> bool:
    """Whether the data holds the default dates of `missing`, with room before and after."""
    d = {k: pd.Timestamp(v) for k, v in defaults.items()}
    first = dates[0]
    ok = True
    if "train_start" in missing:
        ok &= first <= d["train_start"] and int(dates.searchsorted(d["train_start"])) >= min_history
    if "valid_start" in missing:
        ok &= first <= d["valid_start"] < end
    if "test_start" in missing:   # data past a given test end is never read, nor counted
        ok &= d["test_start"] + pd.DateOffset(years=DEFAULT_MIN_TEST_YEARS) <= end
        ok &= d["test_start"] < end if end_given else True
    return bool(ok)


def _split_from_data(dates: pd.DatetimeIndex, given: dict, end: pd.Timestamp,
                     min_train_days: int, min_history: int) -> tuple[dict, str]:
    """Split dates chosen from the calendar for the keys not in `given` (see `TEST_YEARS`)."""
    def index(day: pd.Timestamp) -> int:
        return min(int(dates.searchsorted(day)), len(dates) - 1)

    if "train_start" not in given and len(dates) <= min_history:
        raise StormBtError(
            f"too little data to choose a split: {len(dates)} trading days from "
            f"{dates[0].date()} to {dates[-1].date()}, and the models need {min_history} days "
            f"of history, then {min_train_days} days of training and at least "
            f"{MIN_PERIOD_DAYS} each of validation and test: give a longer history")

    lo = index(given["train_start"]) if "train_start" in given else min(min_history, len(dates) - 1)
    hi = int(dates.searchsorted(end, side="right")) - 1
    n = max(hi - lo + 1, 0)
    longer = "give a longer history" + (" or a later --test-end" if "test_end" in given else "")
    before = f" after {min_history} days of history" if min_history and "train_start" not in given \
        else ""
    parts = []
    if "test_start" in given:
        t = index(given["test_start"])
        if "valid_start" not in given and t - lo < min_train_days + MIN_PERIOD_DAYS:
            raise StormBtError(
                f"--test-start {given['test_start'].date()} leaves {max(t - lo, 0)} trading "
                f"days before it, from {dates[lo].date()}{before}; training and validation "
                f"need at least {min_train_days} + {MIN_PERIOD_DAYS}: give a later "
                "--test-start")
    else:
        by_years = int(dates.searchsorted(end - pd.DateOffset(years=TEST_YEARS), side="right"))
        by_share = hi + 1 - round(TEST_FRACTION * n)
        t = min(max(by_years, by_share), hi)   # a handful of days rounds the share to 0
        parts.append(f"test the last {TEST_YEARS} years" if by_years >= by_share else
                     f"test the last {TEST_FRACTION:.1%} of the days (under {TEST_YEARS} years)")
    if "valid_start" in given:
        v = index(given["valid_start"])
    else:
        by_years = int(dates.searchsorted(dates[t] - pd.DateOffset(years=VALID_YEARS)))
        by_share = t - round(VALID_FRACTION * n)
        v = max(by_years, by_share)
        parts.append(f"validation the {VALID_YEARS} years before" if by_years >= by_share else
                     f"validation the {VALID_FRACTION:.1%} of the days before")
    if "train_start" not in given:
        parts.append("training the rest")
    if v - lo < min_train_days and "test_start" not in given and "valid_start" not in given:
        # Too short for the proportions: the models' minimum training, then 2:3 valid:test.
        rest = hi + 1 - (lo + min_train_days)
        n_valid = round(rest * VALID_FRACTION / (VALID_FRACTION + TEST_FRACTION))
        if min(n_valid, rest - n_valid) < MIN_PERIOD_DAYS:
            raise StormBtError(
                f"too little data to choose a split: {n} trading days from "
                f"{dates[lo].date()} to {end.date()}{before}; the models need {min_train_days} "
                f"days of training and at least {MIN_PERIOD_DAYS} each of validation and test: "
                f"{longer}")
        v = lo + min_train_days
        t = v + n_valid
        parts = [f"training the models' minimum of {min_train_days} days, then validation "
                 f"{n_valid} days and test the remaining {rest - n_valid}"]
    stamps = dict(given)
    stamps.setdefault("train_start", dates[lo])
    stamps.setdefault("valid_start", dates[v])
    stamps.setdefault("test_start", dates[t])
    reason = (f"the data ({dates[0].date()} .. {dates[-1].date()}) does not cover the paper's "
              f"or the embedded sample's split; chose from the data: {', '.join(parts)}")
    return stamps, reason


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
        label_horizon: h, the trading days the labels span (1: next-day returns; a labelled
            sample ending at e needs date e+h inside its range, see `sample_ends`).
        characteristics: float32 (D, S, K), each stock's standardised cross-sectional rank
            of `CHARACTERISTIC_NAMES` on date t (`storm_bt.features.characteristics`);
            None for a feature set built without them.
        hidden_labels: a digest of the (date, stock) labels a point-in-time universe hid
            (`storm_bt.experiments.data.restrict_to_members`); None where none were hidden.
            A model trained on such labels is another fit, so it enters checkpoint keys.
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
    label_horizon: int = 1
    characteristics: np.ndarray | None = None
    hidden_labels: str | None = None

    @property
    def n_features(self) -> int:
        return self.features.shape[2]

    @cached_property
    def first_rows(self) -> np.ndarray:
        """(S,) the date index of each stock's first row (D for a stock with none)."""
        has = self.valid.any(axis=0)
        return np.where(has, self.valid.argmax(axis=0), len(self.dates))

    def listed(self, end: int) -> np.ndarray:
        """(S,) whether each stock has a row on or before date index ``end``: the stocks a
        window ending at ``end`` may hold. A stock that lists later is not yet in the
        universe (its features are zeros there), and whether the data holds it is known
        only after t, so it must not enter anything computed for t."""
        return self.first_rows <= end

    @cached_property
    def cross_section(self) -> tuple[np.ndarray, np.ndarray]:
        """Per date t, the mean m_t (D, F) and population covariance C_t (D, F, F) of the
        features over the stocks of the universe listed by t (`listed`),

            m_t = mean_s x_{t,s},   C_t = mean_s (x_{t,s} - m_t)(x_{t,s} - m_t)',

        float32, computed once (in float64, a block of dates at a time). Date t reads row t
        and the listings up to t only, so it is as causal as the features. With a linear
        stem u = x W' + b the universe's moments of u follow exactly: mean_s u = m W' + b,
        var_s u_j = w_j' C w_j."""
        n_days, _, n_feat = self.features.shape
        mean = np.zeros((n_days, n_feat), dtype=np.float32)
        cov = np.zeros((n_days, n_feat, n_feat), dtype=np.float32)
        for lo in range(0, n_days, 128):
            x = self.features[lo: lo + 128].astype(np.float64)
            days = np.arange(lo, lo + len(x))
            w = (self.first_rows[None, :] <= days[:, None]).astype(np.float64)   # (b, S)
            if w.all():   # every stock listed: the plain means, rounded as before D47
                m = x.mean(axis=1)
                xc = x - m[:, None, :]
                mean[lo: lo + 128] = m
                cov[lo: lo + 128] = xc.transpose(0, 2, 1) @ xc / x.shape[1]
                continue
            n = np.maximum(w.sum(axis=1), 1.0)[:, None]
            m = (x * w[:, :, None]).sum(axis=1) / n
            xc = (x - m[:, None, :]) * w[:, :, None]
            mean[lo: lo + 128] = m
            cov[lo: lo + 128] = xc.transpose(0, 2, 1) @ xc / n[:, :, None]
        return mean, cov

    def date_index(self, start, end) -> np.ndarray:
        """Indices of dates in [start, end]."""
        lo = int(self.dates.searchsorted(pd.Timestamp(start), side="left"))
        hi = int(self.dates.searchsorted(pd.Timestamp(end), side="right"))
        return np.arange(lo, hi)

    def sample_ends(self, start, end, history: int, labelled: bool = True) -> np.ndarray:
        """End indices e of windows whose end date lies in [start, end].

        Requires a full window (e >= history - 1). With ``labelled`` the label must be known
        and lie inside the range too (date e+h <= end, h = ``label_horizon``), and at least
        one stock must have it.
        """
        idx = self.date_index(start, end)
        idx = idx[idx >= history - 1]
        if labelled:
            hi = int(self.dates.searchsorted(pd.Timestamp(end), side="right"))
            idx = idx[idx + self.label_horizon < hi]
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


def forward_return(next_day: np.ndarray, horizon: int) -> np.ndarray:
    """y_h[e] = prod_{j<h} (1 + y[e+j]) - 1 from next-day returns y (D, S): the return from
    the close of e to the close of e+h; NaN where any of the h days is unknown or past the
    last date."""
    if horizon < 1:
        raise StormBtError(f"label horizon {horizon}: use 1 or more trading days")
    if horizon == 1:
        return next_day.copy()
    d = len(next_day)
    growth = np.full(next_day.shape, np.nan, dtype=np.float64)
    if horizon <= d:
        growth[: d - horizon + 1] = 1.0
        for j in range(horizon):
            growth[: d - horizon + 1] *= 1.0 + next_day[j: d - horizon + 1 + j]
    return (growth - 1.0).astype(next_day.dtype)


def with_label_horizon(data: FeatureSet, horizon: int) -> FeatureSet:
    """The feature set with h-day forward returns as labels (the same arrays otherwise).

    Only for training targets: built from next-day labels, so it can only be made once
    (``data.label_horizon`` must be 1); `sample_ends` then keeps a labelled sample only
    when its h days lie inside the range.
    """
    if horizon == data.label_horizon:
        return data
    if data.label_horizon != 1:
        raise StormBtError(f"labels already span {data.label_horizon} days; build the "
                           f"{horizon}-day labels from next-day ones")
    return replace(data, labels=forward_return(data.labels, horizon), label_horizon=horizon)


def build_feature_set(panel: Panel, config: FeatureConfig | None = None,
                      block: int = 64) -> FeatureSet:
    """Features, scaler and labels for the whole panel (every row causal)."""
    raw, names = compute_features(panel, config or FeatureConfig())
    price_names = [f for f in PRICE_FIELDS if f in panel.fields]
    p = len(price_names)
    if names[:p] != price_names:
        raise AssertionError(f"features must start with the price fields {price_names}, got {names[:p]}")
    # only the price fields' statistics are kept: all of them would double the peak memory
    scaled = causal_block_scale(raw, block=block, keep_stats=p)
    del raw
    return FeatureSet(
        dates=panel.dates, tickers=panel.tickers, feature_names=list(names),
        price_names=price_names,
        features=scaled.values.astype(np.float32, copy=False),
        price_mean=scaled.mean,
        price_std=scaled.std,
        labels=next_day_return(panel).astype(np.float32),
        valid=panel.mask.copy(),
        fingerprint=panel.fingerprint(),
        characteristics=stock_characteristics(panel),
    )
