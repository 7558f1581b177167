"""Alpha158-style features (STORM_SPEC 1.3): every group against an independent per-ticker
pandas computation on real tickers, the feature counts, the D24 parity switch, zero-filling,
and no look-ahead."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from storm_bt.data import Panel
from storm_bt.errors import StormBtError
from storm_bt.features.alpha158 import FeatureConfig, compute_features, feature_names

WINDOWS = (5, 10, 20, 30, 60)
#: DOW lists on 2019-03-20, inside the slice: its warm-up after listing is checked too.
OHLCV_TICKERS = ["AAPL", "DOW", "V"]
CLOSE_TICKERS = ["AAPL", "JPM", "XOM"]
KBAR = ["kmid", "kmid2", "klen", "kup", "kup2", "klow", "klow2", "ksft", "ksft2"]
CLOSE_GROUPS = ["roc", "ma", "std", "beta", "max", "min", "qtlu", "qtld", "rank",
                "cntp", "cntn", "cntd", "sump", "sumn", "sumd"]
ALL_GROUPS = ["roc", "ma", "std", "beta", "max", "min", "qtlu", "qtld", "rank", "imax", "imin",
              "imxd", "rsv", "cntp", "cntn", "cntd", "corr", "cord", "sump", "sumn", "sumd",
              "vma", "vstd", "wvma", "vsump", "vsumn", "vsumd"]


# ------------------------------------------------------------------ independent reference
def pandas_reference(df: pd.DataFrame) -> pd.DataFrame:
    """The spec's formulas with pandas rolling windows, on ONE ticker's own rows (from its
    first row on), the way the reference code computes them; corr/cord as intended (D24
    fixed) and sump/vsump clipped at 0 as intended."""
    c = df["close"]
    has = set(df.columns)
    out: dict[str, pd.Series] = {f: df[f] for f in ("open", "high", "low", "close", "adj_close")
                                 if f in has}
    if {"open", "high", "low"} <= has:
        o, h, lo = df["open"], df["high"], df["low"]
        top = pd.concat([o, c], axis=1).max(axis=1)
        bottom = pd.concat([o, c], axis=1).min(axis=1)
        rng = h - lo + 1e-12
        out.update(kmid=(c - o) / c, kmid2=(c - o) / rng, klen=(h - lo) / o, kup=(h - top) / o,
                   kup2=(h - top) / rng, klow=(bottom - lo) / o, klow2=(bottom - lo) / rng,
                   ksft=(2 * c - h - lo) / o, ksft2=(2 * c - h - lo) / rng)
    r = c / c.shift(1) - 1
    groups: dict[str, callable] = {
        "roc": lambda w: c.shift(w) / c,
        "ma": lambda w: c.rolling(w).mean() / c,
        "std": lambda w: c.rolling(w).std() / c,
        "beta": lambda w: (c.shift(w) - c) / (w * c),
        "max": lambda w: c.rolling(w).max() / c,
        "min": lambda w: c.rolling(w).min() / c,
        "qtlu": lambda w: c.rolling(w).quantile(0.8) / c,
        "qtld": lambda w: c.rolling(w).quantile(0.2) / c,
        "rank": lambda w: c.rolling(w).rank(pct=True) / w,
    }
    if "high" in has:
        h, lo = df["high"], df["low"]
        arg_h = lambda w: h.rolling(w).apply(np.argmax, raw=True)  # noqa: E731
        arg_l = lambda w: lo.rolling(w).apply(np.argmin, raw=True)  # noqa: E731

        def rsv(w):
            back = c.shift(w)
            m = lo.where(lo < back, back)
            big = h.where(h > back, back)
            return (c - m) / (big - m + 1e-12)

        groups.update(imax=lambda w: arg_h(w) / w, imin=lambda w: arg_l(w) / w,
                      imxd=lambda w: (arg_h(w) - arg_l(w)) / w, rsv=rsv)
    groups.update(cntp=lambda w: r.gt(0).rolling(w).sum() / w,
                  cntn=lambda w: r.lt(0).rolling(w).sum() / w,
                  cntd=lambda w: (r.gt(0).rolling(w).sum() - r.lt(0).rolling(w).sum()) / w)
    if "volume" in has:
        v = df["volume"]
        groups.update(
            corr=lambda w: c.rolling(w).corr(np.log(v + 1)),
            cord=lambda w: (c / c.shift(1)).rolling(w).corr(np.log(v / v.shift(1) + 1)))

    def up_share(x: pd.Series, w: int) -> pd.Series:
        """sum max(x, 0) / (sum |x| + 1e-12) over the window."""
        return x.clip(lower=0).rolling(w).sum() / (x.abs().rolling(w).sum() + 1e-12)

    sump = lambda w: up_share(r, w)  # noqa: E731
    groups.update(sump=sump, sumn=lambda w: 1 - sump(w), sumd=lambda w: 2 * sump(w) - 1)
    if "volume" in has:
        turnover = r.abs() * v
        dv = v - v.shift(1)
        vsump = lambda w: up_share(dv, w)  # noqa: E731
        groups.update(
            vma=lambda w: v.rolling(w).mean() / (v + 1e-12),
            vstd=lambda w: v.rolling(w).std() / (v + 1e-12),
            wvma=lambda w: turnover.rolling(w).std() / (turnover.rolling(w).mean() + 1e-12),
            vsump=vsump, vsumn=lambda w: 1 - vsump(w), vsumd=lambda w: 2 * vsump(w) - 1)
    for name in ALL_GROUPS:
        if name in groups:
            for w in WINDOWS:
                out[f"{name}_{w}"] = groups[name](w)
    frame = pd.DataFrame(out, index=df.index)
    frame["day"] = df.index.day
    frame["weekday"] = df.index.day_of_week
    frame["month"] = df.index.month
    return frame.replace([np.inf, -np.inf], np.nan).fillna(0.0)


def ticker_rows(panel: Panel, s: int) -> tuple[np.ndarray, pd.DataFrame]:
    """Row positions of ticker s's data and its own frame (what the reference code sees)."""
    rows = np.flatnonzero(np.isfinite(panel.array("close")[:, s]))
    frame = pd.DataFrame({f: panel.array(f)[rows, s] for f in panel.fields},
                         index=panel.dates[rows])
    return rows, frame


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def ohlcv_panel(dj30_panel) -> Panel:
    return dj30_panel.select(OHLCV_TICKERS).since("2018-06-01").until("2021-06-30")


@pytest.fixture(scope="module")
def close_panel(embedded_panel) -> Panel:
    return embedded_panel.select(CLOSE_TICKERS).since("2016-01-01")


def _with_reference(panel: Panel):
    values, names = compute_features(panel)
    refs = [ticker_rows(panel, s) + (pandas_reference(ticker_rows(panel, s)[1]),)
            for s in range(len(panel.tickers))]
    return values, names, refs


@pytest.fixture(scope="module")
def ohlcv_features(ohlcv_panel):
    return _with_reference(ohlcv_panel)


@pytest.fixture(scope="module")
def close_features(close_panel):
    return _with_reference(close_panel)


def _columns(names: list[str], group: str) -> list[str]:
    if group == "kbar":
        return KBAR
    if group == "prices":
        return [n for n in names if n in ("open", "high", "low", "close", "adj_close")]
    if group == "calendar":
        return ["day", "weekday", "month"]
    return [f"{group}_{w}" for w in WINDOWS]


def _check_group(values, names, refs, group):
    # pandas' rolling corr uses E[xy] - E[x]E[y] (cancellation): a looser tolerance there.
    rtol, atol = (1e-6, 1e-8) if group in ("corr", "cord") else (1e-8, 1e-10)
    for s, (rows, _, ref) in enumerate(refs):
        for name in _columns(names, group):
            mine = values[rows, s, names.index(name)]
            np.testing.assert_allclose(mine, ref[name].to_numpy(), rtol=rtol, atol=atol,
                                       err_msg=f"ticker {s} feature {name}")


# ------------------------------------------------------------------------ against pandas
@pytest.mark.parametrize("group", ["prices", "kbar", *ALL_GROUPS, "calendar"])
def test_ohlcv_group_matches_pandas(ohlcv_features, group):
    values, names, refs = ohlcv_features
    _check_group(values, names, refs, group)


@pytest.mark.parametrize("group", ["prices", *CLOSE_GROUPS, "calendar"])
def test_close_only_group_matches_pandas(close_features, group):
    values, names, refs = close_features
    _check_group(values, names, refs, group)


def test_reference_columns_are_the_emitted_names(ohlcv_features, close_features):
    for values, names, refs in (ohlcv_features, close_features):
        assert list(refs[0][2].columns) == names


# ------------------------------------------------------------------------------ counts
def test_full_ohlcv_has_152_features_in_spec_order(ohlcv_features, dj30_panel):
    values, names, _ = ohlcv_features
    assert len(names) == 152 == values.shape[2] == len(set(names))
    assert names[:5] == ["open", "high", "low", "close", "adj_close"]
    assert names[5:14] == KBAR
    assert names[14:149] == [f"{g}_{w}" for g in ALL_GROUPS for w in WINDOWS]
    assert names[149:] == ["day", "weekday", "month"]
    assert feature_names(dj30_panel.fields) == names


def test_close_only_gets_the_close_subset(close_features, embedded_panel):
    values, names, _ = close_features
    assert embedded_panel.fields == ("close", "adj_close")
    expected = (["close", "adj_close"] + [f"{g}_{w}" for g in CLOSE_GROUPS for w in WINDOWS]
                + ["day", "weekday", "month"])
    assert names == expected and values.shape[2] == 80


def test_config_windows_and_calendar_shape_the_names():
    names = feature_names(("close", "adj_close"), FeatureConfig(windows=(3, 7), calendar=False))
    assert names == ["close", "adj_close"] + [f"{g}_{w}" for g in CLOSE_GROUPS for w in (3, 7)]


@pytest.mark.parametrize("kwargs", [dict(corr_mode="pandas"), dict(windows=()),
                                    dict(windows=(5, 0)), dict(windows=(5, 5))])
def test_bad_config_is_a_user_error(kwargs):
    with pytest.raises(StormBtError):
        FeatureConfig(**kwargs)


# ----------------------------------------------------------------------- D24 parity mode
def test_parity_corr_is_one_after_warm_up_and_zero_during_it(ohlcv_panel, ohlcv_features):
    fixed, names, _ = ohlcv_features
    parity, parity_names = compute_features(ohlcv_panel, FeatureConfig(corr_mode="parity"))
    assert parity_names == names
    for s in range(len(ohlcv_panel.tickers)):
        first = int(np.flatnonzero(np.isfinite(ohlcv_panel.array("close")[:, s]))[0])
        for w in WINDOWS:
            corr = parity[:, s, names.index(f"corr_{w}")]
            cord = parity[:, s, names.index(f"cord_{w}")]
            # corr needs w closes, cord w close ratios (w + 1 closes)
            assert (corr[:first + w - 1] == 0).all() and (corr[first + w - 1:] == 1).all()
            assert (cord[:first + w] == 0).all() and (cord[first + w:] == 1).all()
            # the intended correlations are not constant
            assert np.unique(fixed[first + w:, s, names.index(f"corr_{w}")]).size > 100
    others = [k for k, n in enumerate(names) if not n.startswith(("corr_", "cord_"))]
    np.testing.assert_array_equal(parity[:, :, others], fixed[:, :, others])


# ------------------------------------------------------------- hand-computed tiny cases
def _tiny_panel(close, high=None, low=None, volume=None) -> Panel:
    close = np.asarray(close, float)
    n = len(close)
    high = close if high is None else np.asarray(high, float)
    low = close if low is None else np.asarray(low, float)
    volume = np.full(n, 1000.0) if volume is None else np.asarray(volume, float)
    values = np.stack([close, high, low, close, close, volume], axis=-1)[:, None, :]
    return Panel(pd.bdate_range("2021-01-04", periods=n), ("T",),
                 ("open", "high", "low", "close", "adj_close", "volume"), values,
                 np.isfinite(values[:, :, 3]))


def test_hand_computed_rank_quantile_and_argmax_with_ties():
    cfg = FeatureConfig(windows=(5,), calendar=False)
    close = [3.0, 1.0, 2.0, 2.0, 2.0]
    high = [1.0, 4.0, 2.0, 4.0, 3.0]          # two maxima: argmax is the older one (1)
    low = [5.0, 5.0, 1.0, 1.0, 1.0]           # three minima: argmin is 2
    values, names = compute_features(_tiny_panel(close, high, low), cfg)
    last = dict(zip(names, values[-1, 0]))
    # close 2 in [3,1,2,2,2]: 1 below, 3 equal -> average rank 1 + (3+1)/2 = 3 -> 3/5, /5 again
    assert last["rank_5"] == pytest.approx(3 / 5 / 5)
    # sorted [1,2,2,2,3]: q0.8 at position 3.2 -> 2 + 0.2*(3-2); q0.2 at 0.8 -> 1 + 0.8*(2-1)
    assert last["qtlu_5"] == pytest.approx(2.2 / 2.0)
    assert last["qtld_5"] == pytest.approx(1.8 / 2.0)
    assert last["imax_5"] == pytest.approx(1 / 5)
    assert last["imin_5"] == pytest.approx(2 / 5)
    assert last["imxd_5"] == pytest.approx((1 - 2) / 5)
    # returns: (none), -2/3, +1, 0, 0 -> one up, one down in the 5-day window
    assert last["cntp_5"] == pytest.approx(0.2) and last["cntn_5"] == pytest.approx(0.2)
    assert last["sump_5"] == 0.0                      # needs 5 returns, only 4 exist
    assert (values[:4, 0, names.index("ma_5")] == 0).all()       # warm-up rows are 0
    assert last["ma_5"] == pytest.approx(10 / 5 / 2)


def test_zero_volume_infinities_become_zero():
    cfg = FeatureConfig(windows=(5,), calendar=False)
    close = 100 + np.arange(12.0) % 3
    volume = np.array([1e6, 2e6, 0, 0, 3e6, 1e6, 2e6, 3e6, 1e6, 2e6, 3e6, 1e6])
    values, names = compute_features(_tiny_panel(close, volume=volume), cfg)
    assert np.isfinite(values).all()
    cord = values[:, 0, names.index("cord_5")]
    # log(V/V[-1] + 1) is inf at row 4 (0 before), NaN at row 3 (0/0): windows holding
    # rows 3 or 4 (rows 5..8) give 0; row 9 is the first clean window
    assert (cord[:9] == 0).all() and cord[9] != 0
    vma = values[:, 0, names.index("vma_5")]
    assert vma[4] == pytest.approx(np.mean(volume[:5]) / (3e6 + 1e-12))


def test_history_shorter_than_a_window_gives_zero_columns():
    panel = _tiny_panel(100 + np.arange(12.0) % 5)
    values, names = compute_features(panel)
    assert values.shape == (12, 1, 152) and np.isfinite(values).all()
    for w in (20, 30, 60):
        assert (values[:, :, [k for k, n in enumerate(names) if n.endswith(f"_{w}")]] == 0).all()
    assert (values[-1, 0, [names.index(f"ma_{w}") for w in (5, 10)]] != 0).all()


def test_rows_before_listing_are_zero(ohlcv_panel, ohlcv_features):
    values, _, _ = ohlcv_features
    s = OHLCV_TICKERS.index("DOW")
    first = int(np.flatnonzero(ohlcv_panel.mask[:, s])[0])
    assert ohlcv_panel.dates[first] == pd.Timestamp("2019-03-20")
    assert (values[:first, s, :] == 0).all()
    assert (values[first:, s, :] != 0).any(axis=0).all()       # no all-zero column after
    assert np.isfinite(values).all()


# -------------------------------------------------------------------------- no look-ahead
@pytest.mark.parametrize("cut", ["2019-03-25", "2020-07-15"])
def test_features_up_to_t_ignore_cut_future(ohlcv_panel, ohlcv_features, cut):
    full, _, _ = ohlcv_features
    head, _ = compute_features(ohlcv_panel.until(cut))
    np.testing.assert_array_equal(head, full[:len(head)])


def test_features_up_to_t_ignore_perturbed_future(ohlcv_panel, ohlcv_features):
    full, _, _ = ohlcv_features
    t = int(ohlcv_panel.dates.searchsorted(pd.Timestamp("2020-01-15")))
    rng = np.random.default_rng(0)
    values = ohlcv_panel.values.copy()
    values[t + 1:] *= rng.uniform(0.5, 1.5, size=values[t + 1:].shape)
    perturbed = Panel(ohlcv_panel.dates, ohlcv_panel.tickers, ohlcv_panel.fields, values,
                      ohlcv_panel.mask)
    changed, _ = compute_features(perturbed)
    np.testing.assert_array_equal(changed[:t + 1], full[:t + 1])
    assert not np.array_equal(changed[t + 1:], full[t + 1:])


def test_chunking_does_not_change_the_numbers(ohlcv_panel, ohlcv_features, monkeypatch):
    import storm_bt.features.alpha158 as features

    whole, _, _ = ohlcv_features
    monkeypatch.setattr(features, "_CHUNK_ELEMENTS", 1)       # one ticker at a time
    monkeypatch.setattr(features, "_SORT_BUDGET", 1)          # one date of windows at a time
    chunked, _ = compute_features(ohlcv_panel)
    np.testing.assert_array_equal(chunked, whole)
