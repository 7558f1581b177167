"""Alpha158-style per-stock features of STORM (STORM_SPEC 1.3), vectorised over (date, ticker).

O, H, L, C, V are open, high, low, close, volume; ``x[t-w]`` is the value w rows earlier;
rolling statistics cover rows t-w+1..t (the current day included); ``std`` has ddof=1.
``r = C/C[-1] - 1`` and ``dV = V - V[-1]``. For each window w in (5, 10, 20, 30, 60):

    roc   = C[t-w]/C                 ma   = mean(C)/C           std  = std(C)/C
    beta  = (C[t-w] - C)/(w C)       max  = max(C)/C            min  = min(C)/C
    qtlu  = q0.8(C)/C                qtld = q0.2(C)/C           (quantiles: linear interpolation)
    rank  = pctrank(C[t] in window)/w   (pandas rank(pct=True), ties averaged; divided by w again)
    imax  = argmax(H)/w   imin = argmin(L)/w   imxd = (argmax H - argmin L)/w   (0 = oldest day)
    rsv   = (C - m)/(M - m + 1e-12),  m = min(L, C[t-w]),  M = max(H, C[t-w])   (elementwise)
    cntp  = #{r > 0}/w   cntn = #{r < 0}/w   cntd = cntp - cntn
    corr  = rollcorr(C, log(V+1))    cord = rollcorr(C/C[-1], log(V/V[-1]+1))
    sump  = sum max(r,0)/(sum |r| + 1e-12)    sumn = 1 - sump    sumd = 2 sump - 1
    vma   = mean(V)/(V+1e-12)        vstd = std(V)/(V+1e-12)
    wvma  = std(|r| V)/(mean(|r| V) + 1e-12)
    vsump = sum max(dV,0)/(sum |dV| + 1e-12)  vsumn = 1 - vsump   vsumd = 2 vsump - 1

plus the raw prices and the 9 K-bar features (kmid, kmid2, klen, kup, kup2, klow, klow2, ksft,
ksft2) and the calendar (day, weekday, month). ``corr``/``cord`` follow STORM_SPEC D24: "fixed"
computes the intended correlations; "parity" reproduces the reference code, which correlates
the first series with itself (1 once the window is complete and not constant, else 0).
``sump`` and ``vsump`` clip at 0 as intended (the reference's chained assignment does not
clip under pandas copy-on-write).

Which fields each group needs (a group is emitted only when its fields are present, so a
close-only panel gets prices, roc ma std beta max min qtlu qtld rank cntp cntn cntd sump sumn
sumd, and the calendar):
- open, high, low, close: the K-bar features;
- high: imax;  low: imin;  high+low: imxd;  high+low+close: rsv;
- volume (with close for corr, cord, wvma): corr, cord, vma, vstd, wvma, vsump, vsumn, vsumd.

Causality and missing rows: every feature at date t reads rows <= t of its own ticker only.
A window is complete when all its rows hold a value; an incomplete window (warm-up, or rows
before the ticker's first row, which are NaN in a `Panel`) gives NaN. As in the reference,
``r`` on a ticker's first row is undefined and counts as neither up nor down in cntp/cntn.
Finally +-inf and NaN become 0, and rows where the ticker has no close (before listing, after
delisting) are all zero, calendar included.

Implementation: arrays are (dates, tickers); a rolling statistic is a loop over the w lags,
each step one vectorised operation on the whole (dates, tickers) array; quantiles, argmax and
argmin use ``np.sort``/``np.argmax`` on contiguous copies of ``sliding_window_view`` windows,
in date chunks to bound memory. Tickers are processed in chunks that fit in cache.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from storm_bt.data.panel import PRICE_FIELDS, Panel
from storm_bt.errors import StormBtError

log = logging.getLogger(__name__)

KBAR_NAMES: tuple[str, ...] = (
    "kmid", "kmid2", "klen", "kup", "kup2", "klow", "klow2", "ksft", "ksft2")
CALENDAR_NAMES: tuple[str, ...] = ("day", "weekday", "month")

_C = frozenset({"close"})
_V = frozenset({"volume"})
_CV = frozenset({"close", "volume"})
#: The 27 rolling groups in spec order, with the fields each one needs.
GROUPS: tuple[tuple[str, frozenset[str]], ...] = (
    ("roc", _C), ("ma", _C), ("std", _C), ("beta", _C), ("max", _C), ("min", _C),
    ("qtlu", _C), ("qtld", _C), ("rank", _C),
    ("imax", frozenset({"high"})), ("imin", frozenset({"low"})),
    ("imxd", frozenset({"high", "low"})), ("rsv", frozenset({"high", "low", "close"})),
    ("cntp", _C), ("cntn", _C), ("cntd", _C), ("corr", _CV), ("cord", _CV),
    ("sump", _C), ("sumn", _C), ("sumd", _C),
    ("vma", _V), ("vstd", _V), ("wvma", _CV), ("vsump", _V), ("vsumn", _V), ("vsumd", _V),
)
KBAR_FIELDS = frozenset({"open", "high", "low", "close"})
CORR_MODES = ("fixed", "parity")

_EPS = 1e-12
#: Elements of one temporary contiguous copy of windows (sorted or arg-reduced).
_SORT_BUDGET = 262_144
#: Elements (dates x tickers) of one chunk of tickers' working arrays.
_CHUNK_ELEMENTS = 65_536


@dataclass(frozen=True)
class FeatureConfig:
    """Which features to compute.

    Attributes:
        windows: rolling window lengths, in output order.
        corr_mode: "fixed" (intended rolling correlations, D24) or "parity" (the reference's
            constant 1 after warm-up, 0 during it).
        calendar: append day (1-31), weekday (0-4) and month (1-12).
    """

    windows: tuple[int, ...] = (5, 10, 20, 30, 60)
    corr_mode: str = "fixed"
    calendar: bool = True

    def __post_init__(self) -> None:
        if self.corr_mode not in CORR_MODES:
            raise StormBtError(f"feature corr_mode {self.corr_mode!r} is unknown; "
                               f"use one of {', '.join(CORR_MODES)}")
        windows = tuple(self.windows)
        if not windows or any(isinstance(w, bool) or not isinstance(w, (int, np.integer))
                              or w < 1 for w in windows) or len(set(windows)) != len(windows):
            raise StormBtError(f"feature windows {self.windows!r} must be distinct positive "
                               "integers, e.g. (5, 10, 20, 30, 60)")


def feature_names(fields: tuple[str, ...], config: FeatureConfig = FeatureConfig()) -> list[str]:
    """The feature names `compute_features` emits for a panel with these `fields`."""
    present = set(fields)
    names = [f for f in PRICE_FIELDS if f in present]
    if KBAR_FIELDS <= present:
        names += list(KBAR_NAMES)
    for group, needs in GROUPS:
        if needs <= present:
            names += [f"{group}_{w}" for w in config.windows]
    if config.calendar:
        names += list(CALENDAR_NAMES)
    return names


def compute_features(panel: Panel,
                     config: FeatureConfig = FeatureConfig()) -> tuple[np.ndarray, list[str]]:
    """The features of every (date, ticker) of `panel`.

    Returns:
        (values, names): values is float64 (n_dates, n_tickers, F) with no NaN or inf; names
        lists the F features: the raw price fields present (open, high, low, close, adj_close
        in that order), the K-bar features, the 27 groups x windows in spec order, then the
        calendar. With full OHLCV and the default config F = 152.
    """
    names = feature_names(panel.fields, config)
    n_dates, n_tickers = panel.mask.shape
    out = np.empty((n_dates, n_tickers, len(names)))   # every element is written below
    # Tickers are independent: a chunk of them at a time keeps the working arrays in cache.
    step = max(1, _CHUNK_ELEMENTS // max(1, n_dates))
    buffer = np.empty((len(names), n_dates, min(step, n_tickers)))
    for s0 in range(0, n_tickers, step):
        tickers = slice(s0, min(s0 + step, n_tickers))
        series = {f: np.ascontiguousarray(panel.array(f)[:, tickers]) for f in panel.fields}
        _features_into(out[:, tickers], buffer[:, :, :tickers.stop - s0], names, series,
                       panel.dates, config)
    log.debug("computed %d features for %d dates x %d tickers", len(names), n_dates, n_tickers)
    return out, names


def _features_into(out: np.ndarray, buf: np.ndarray, names: list[str],
                   series: dict[str, np.ndarray], dates: pd.DatetimeIndex,
                   config: FeatureConfig) -> None:
    """Write the features `names` of the (dates, tickers) `series` into out (D, S, F),
    going through buf (F, D, S), feature-major so that every feature is one contiguous write."""
    column = {name: k for k, name in enumerate(names)}
    listed = np.isfinite(series["close"])

    def emit(name: str, value: np.ndarray) -> None:
        if name in column:
            buf[column[name]] = value

    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for f in PRICE_FIELDS:
            if f in series:
                emit(f, series[f])
        if KBAR_FIELDS <= set(series):
            for name, value in _kbar(series["open"], series["high"], series["low"],
                                     series["close"]):
                emit(name, value)
        for w in config.windows:
            _window_features(series, w, config.corr_mode, emit)
    if config.calendar:
        for name, value in zip(CALENDAR_NAMES, (dates.day, dates.day_of_week, dates.month)):
            emit(name, np.asarray(value, float)[:, None])
    np.copyto(buf, 0.0, where=~(np.isfinite(buf) & listed))
    out[...] = buf.transpose(1, 2, 0)


# ------------------------------------------------------------------------ feature groups
def _kbar(o: np.ndarray, h: np.ndarray, l: np.ndarray,
          c: np.ndarray) -> Iterator[tuple[str, np.ndarray]]:
    rng = h - l + _EPS
    up = h - np.maximum(o, c)
    down = np.minimum(o, c) - l
    shift = 2 * c - h - l
    yield "kmid", (c - o) / c
    yield "kmid2", (c - o) / rng
    yield "klen", (h - l) / o
    yield "kup", up / o
    yield "kup2", up / rng
    yield "klow", down / o
    yield "klow2", down / rng
    yield "ksft", shift / o
    yield "ksft2", shift / rng


def _window_features(s: dict[str, np.ndarray], w: int, corr_mode: str,
                     emit: Callable[[str, np.ndarray], None]) -> None:
    """Emit every group's feature for window `w` (groups whose fields are missing are
    skipped)."""
    c = s.get("close")
    v = s.get("volume")
    has = set(s)
    if c is not None:
        c_back = _shift(c, w)
        c_prev = _shift(c, 1)
        emit(f"roc_{w}", c_back / c)
        emit(f"ma_{w}", _rolling_sum(c, w) / w / c)
        emit(f"std_{w}", np.sqrt(_rolling_var(c, w)) / c)
        emit(f"beta_{w}", (c_back - c) / (w * c))
        lo, hi, q2, q8 = _rolling_order_stats(c, w, (0.2, 0.8))
        emit(f"max_{w}", hi / c)
        emit(f"min_{w}", lo / c)
        emit(f"qtlu_{w}", q8 / c)
        emit(f"qtld_{w}", q2 / c)
        emit(f"rank_{w}", _rolling_pct_rank(c, w) / w)
    if "high" in has:
        imax = _rolling_arg(s["high"], w, np.argmax)
        emit(f"imax_{w}", imax / w)
    if "low" in has:
        imin = _rolling_arg(s["low"], w, np.argmin)
        emit(f"imin_{w}", imin / w)
    if {"high", "low"} <= has:
        emit(f"imxd_{w}", (imax - imin) / w)
    if {"high", "low", "close"} <= has:
        m = np.minimum(s["low"], c_back)
        big = np.maximum(s["high"], c_back)
        emit(f"rsv_{w}", (c - m) / (big - m + _EPS))
    if c is not None:
        r = c / c_prev - 1.0
        complete = _complete(np.isfinite(c), w)
        # r is NaN on a ticker's first row: neither up nor down there, as in the reference.
        cntp = np.where(complete, _rolling_sum((r > 0).astype(float), w) / w, np.nan)
        cntn = np.where(complete, _rolling_sum((r < 0).astype(float), w) / w, np.nan)
        emit(f"cntp_{w}", cntp)
        emit(f"cntn_{w}", cntn)
        emit(f"cntd_{w}", cntp - cntn)
    if c is not None and v is not None:
        ratio = c / c_prev
        if corr_mode == "parity":
            emit(f"corr_{w}", _self_corr(c, w))
            emit(f"cord_{w}", _self_corr(ratio, w))
        else:
            emit(f"corr_{w}", _rolling_corr(c, np.log(v + 1.0), w))
            emit(f"cord_{w}", _rolling_corr(ratio, np.log(v / _shift(v, 1) + 1.0), w))
    if c is not None:
        sump = _rolling_sum(np.maximum(r, 0.0), w) / (_rolling_sum(np.abs(r), w) + _EPS)
        emit(f"sump_{w}", sump)
        emit(f"sumn_{w}", 1.0 - sump)
        emit(f"sumd_{w}", 2.0 * sump - 1.0)
    if v is not None:
        emit(f"vma_{w}", _rolling_sum(v, w) / w / (v + _EPS))
        emit(f"vstd_{w}", np.sqrt(_rolling_var(v, w)) / (v + _EPS))
        dv = v - _shift(v, 1)
        vsump = _rolling_sum(np.maximum(dv, 0.0), w) / (_rolling_sum(np.abs(dv), w) + _EPS)
        emit(f"vsump_{w}", vsump)
        emit(f"vsumn_{w}", 1.0 - vsump)
        emit(f"vsumd_{w}", 2.0 * vsump - 1.0)
    if c is not None and v is not None:
        turnover = np.abs(r) * v
        emit(f"wvma_{w}", np.sqrt(_rolling_var(turnover, w))
             / (_rolling_sum(turnover, w) / w + _EPS))


# --------------------------------------------------------------------- rolling primitives
# Every primitive takes x of shape (D, S) and returns (D, S) aligned on the window's last
# row; rows 0..w-2 (no full window) are NaN.

def _shift(x: np.ndarray, k: int) -> np.ndarray:
    """x[t-k] at row t (NaN for t < k)."""
    out = np.full_like(x, np.nan)
    if k < len(x):
        out[k:] = x[:len(x) - k]
    return out


def _lags(x: np.ndarray, w: int) -> Iterator[np.ndarray]:
    """For k = 0..w-1, the rows x[t-k] for t = w-1..D-1 (k = 0 is the current day)."""
    n = len(x) - w + 1
    for k in range(w):
        yield x[w - 1 - k: w - 1 - k + n]


def _pad(x: np.ndarray, w: int, n_rows: int) -> np.ndarray:
    """Put the window results of rows w-1..D-1 back on the D rows, NaN before."""
    out = np.full((n_rows,) + x.shape[1:], np.nan, dtype=float)
    if w <= n_rows:
        out[w - 1:] = x
    return out


def _complete(valid: np.ndarray, w: int) -> np.ndarray:
    """True where rows t-w+1..t are all valid."""
    bad = np.zeros((len(valid) + 1,) + valid.shape[1:], dtype=np.int64)
    np.cumsum(~valid, axis=0, out=bad[1:])
    out = np.zeros(valid.shape, dtype=bool)
    if w <= len(valid):
        out[w - 1:] = bad[w:] == bad[:len(valid) - w + 1]
    return out


def _rolling_sum(x: np.ndarray, w: int) -> np.ndarray:
    """Sum over the window, added day by day from the current day back (NaN propagates)."""
    if w > len(x):
        return np.full_like(x, np.nan)
    lags = _lags(x, w)
    total = next(lags).copy()
    for lag in lags:
        total += lag
    return _pad(total, w, len(x))


def _deviation_mean(x: np.ndarray, w: int) -> np.ndarray:
    """Window mean of the deviations d_k = x[t-k] - x[t], for t = w-1..D-1. Measuring from
    the current day keeps a constant window exactly constant (variance exactly 0)."""
    now = x[w - 1:]
    total = np.zeros_like(now)
    for lag in _lags(x, w):
        total += lag - now
    return total / w


def _rolling_var(x: np.ndarray, w: int) -> np.ndarray:
    """Sample variance (ddof=1) over the window, two-pass; NaN when w = 1."""
    if w > len(x) or w == 1:
        return np.full_like(x, np.nan)
    now = x[w - 1:]
    mean = _deviation_mean(x, w)
    acc = np.zeros_like(now)
    for lag in _lags(x, w):
        d = lag - now
        d -= mean
        acc += d * d
    return _pad(acc / (w - 1), w, len(x))


def _rolling_corr(x: np.ndarray, y: np.ndarray, w: int) -> np.ndarray:
    """Pearson correlation of x and y over the window; NaN when a window holds a non-finite
    value or either series is constant in it."""
    if w > len(x):
        return np.full_like(x, np.nan)
    complete = _complete(np.isfinite(x) & np.isfinite(y), w)
    x = np.where(np.isfinite(x), x, 0.0)
    y = np.where(np.isfinite(y), y, 0.0)
    x_now, y_now = x[w - 1:], y[w - 1:]
    mx, my = _deviation_mean(x, w), _deviation_mean(y, w)
    sxy, sxx, syy = (np.zeros_like(mx) for _ in range(3))
    for a, b in zip(_lags(x, w), _lags(y, w)):
        a = a - x_now
        a -= mx
        b = b - y_now
        b -= my
        sxy += a * b
        sxx += a * a
        syy += b * b
    corr = np.where((sxx > 0) & (syy > 0), sxy / np.sqrt(sxx * syy), np.nan)
    return np.where(complete, _pad(corr, w, len(x)), np.nan)


def _self_corr(x: np.ndarray, w: int) -> np.ndarray:
    """The reference's corr(x, x): 1 where the window is complete and not constant, else NaN
    (a constant window gives 0/0 there)."""
    complete = _complete(np.isfinite(x), w)
    spread = _rolling_extreme(x, w, np.maximum) - _rolling_extreme(x, w, np.minimum)
    return np.where(complete & (spread > 0), 1.0, np.nan)


def _rolling_extreme(x: np.ndarray, w: int, op: np.ufunc) -> np.ndarray:
    """Window maximum (op = np.maximum) or minimum (np.minimum); NaN propagates."""
    if w > len(x):
        return np.full_like(x, np.nan)
    lags = _lags(x, w)
    acc = next(lags).copy()
    for lag in lags:
        op(acc, lag, out=acc)
    return _pad(acc, w, len(x))


def _rolling_arg(x: np.ndarray, w: int, reduce: Callable[..., np.ndarray]) -> np.ndarray:
    """0-based position (0 = oldest day) of the window's first maximum (`reduce` =
    np.argmax) or minimum (np.argmin); NaN if incomplete."""
    out = np.full(x.shape, np.nan)
    if w > len(x):
        return out
    windows = sliding_window_view(x, w, axis=0)           # (D-w+1, S, w), a view
    step = max(1, _SORT_BUDGET // max(1, w * int(np.prod(x.shape[1:]))))
    for start in range(0, len(windows), step):
        chunk = np.ascontiguousarray(windows[start:start + step])
        out[w - 1 + start: w - 1 + start + len(chunk)] = reduce(chunk, axis=-1)
    return np.where(_complete(np.isfinite(x), w), out, np.nan)


def _rolling_pct_rank(x: np.ndarray, w: int) -> np.ndarray:
    """pandas ``rank(pct=True)`` of the current day within the window: (number below +
    (number equal + 1)/2)/w, ties averaged; NaN if incomplete."""
    if w > len(x):
        return np.full_like(x, np.nan)
    now = x[w - 1:]
    below = np.zeros(now.shape)
    equal = np.zeros(now.shape)
    for lag in _lags(x, w):
        below += lag < now
        equal += lag == now
    pct = (below + (equal + 1.0) / 2.0) / w
    return np.where(_complete(np.isfinite(x), w), _pad(pct, w, len(x)), np.nan)


def _rolling_order_stats(x: np.ndarray, w: int,
                         quantiles: tuple[float, ...]) -> list[np.ndarray]:
    """Window min, max and the given quantiles (pandas linear interpolation:
    lo + (hi - lo) * (q (w-1) - floor(q (w-1)))); NaN if incomplete."""
    n_rows = len(x)
    results = [np.full(x.shape, np.nan) for _ in range(2 + len(quantiles))]
    if w > n_rows:
        return results
    positions = [q * (w - 1) for q in quantiles]
    lows = [int(np.floor(p)) for p in positions]
    windows = sliding_window_view(x, w, axis=0)           # (D-w+1, S, w), a view
    step = max(1, _SORT_BUDGET // max(1, w * int(np.prod(x.shape[1:]))))
    for start in range(0, len(windows), step):
        ordered = np.sort(windows[start:start + step], axis=-1)   # SIMD sort: faster than
        rows = slice(w - 1 + start, w - 1 + start + len(ordered))  # np.partition here
        results[0][rows] = ordered[..., 0]
        results[1][rows] = ordered[..., w - 1]
        for k, (p, lo) in enumerate(zip(positions, lows)):
            low = ordered[..., lo]
            if p == lo:
                results[2 + k][rows] = low
            else:
                results[2 + k][rows] = low + (ordered[..., lo + 1] - low) * (p - lo)
    complete = _complete(np.isfinite(x), w)
    return [np.where(complete, r, np.nan) for r in results]
