"""Cross-sectional stock characteristics: their values, their ranks, and no look-ahead."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from storm_bt.data.panel import FIELDS, Panel
from storm_bt.features.characteristics import (CHARACTERISTIC_NAMES, REVERSAL, WINDOW,
                                               cross_sectional_ranks, raw_characteristics,
                                               stock_characteristics)
from storm_bt.features.dataset import build_feature_set
from storm_bt.models.neural.batch import make_batch


def _panel(n_days: int = 200, n_stocks: int = 6, seed: int = 0,
           fields: tuple[str, ...] = FIELDS) -> Panel:
    """Random OHLCV prices whose stocks differ in price level, volume and volatility."""
    rng = np.random.default_rng(seed)
    vol = 0.01 * (1 + np.arange(n_stocks))
    close = 20 * 3.0 ** np.arange(n_stocks) * np.exp(np.cumsum(
        rng.normal(0, vol, (n_days, n_stocks)), axis=0))
    by_field = {"open": close * 1.001, "high": close * 1.01, "low": close * 0.99,
                "close": close, "adj_close": close * 0.98,
                "volume": rng.uniform(0.5, 1.5, (n_days, n_stocks)) * 1e6
                * (1 + np.arange(n_stocks))}
    values = np.stack([by_field[f] for f in fields], axis=-1)
    return Panel(dates=pd.bdate_range("2015-01-01", periods=n_days),
                 tickers=tuple(f"S{i}" for i in range(n_stocks)), fields=fields,
                 values=values, mask=np.ones((n_days, n_stocks), dtype=bool))


def test_raw_characteristics_are_the_documented_formulas():
    panel = _panel()
    raw = raw_characteristics(panel)
    t, s = 150, 2
    adj = panel.array("adj_close")[:, s]
    dollars = panel.array("close")[:, s] * panel.array("volume")[:, s]
    returns = adj[t - WINDOW + 1: t + 1] / adj[t - WINDOW: t] - 1
    expected = [np.log(dollars[t - WINDOW + 1: t + 1].mean()), np.log(returns.std(ddof=1)),
                adj[t] / adj[t - WINDOW] - 1, adj[t] / adj[t - REVERSAL] - 1]
    np.testing.assert_allclose(raw[t, s], expected, rtol=1e-10)
    # too little history: 64 days of dollar volume need 64 rows, 64 returns or a 64-day
    # return one more
    assert np.isnan(raw[WINDOW - 2, :, 0]).all() and np.isfinite(raw[WINDOW - 1, :, 0]).all()
    assert np.isnan(raw[WINDOW - 1, :, 1:3]).all() and np.isfinite(raw[WINDOW, :, 1:3]).all()


def test_ranks_are_standardised_over_the_valid_stocks_of_each_date():
    values = np.array([[3.0, 1.0, 2.0, 10.0, np.nan]])[..., None]       # (1 date, 5 stocks, 1)
    valid = np.array([[True, True, True, False, True]])
    ranks = cross_sectional_ranks(values, valid)[0, :, 0]
    # stocks 0..2 are ranked (k = 3: ranks 3, 1, 2); stock 3 has no row, stock 4 no value
    np.testing.assert_allclose(ranks, [1.2247449, -1.2247449, 0.0, 0.0, 0.0], rtol=1e-6)
    ranked = ranks[:3]
    assert ranked.mean() == pytest.approx(0.0, abs=1e-7)
    assert (ranked ** 2).mean() == pytest.approx(1.0, rel=1e-6)
    # fewer than two comparable stocks: nothing to rank
    alone = cross_sectional_ranks(values, np.array([[True, False, False, False, False]]))
    assert not alone.any()


def test_characteristics_order_the_stocks_by_their_dollar_volume_and_volatility():
    panel = _panel()
    chars = stock_characteristics(panel)
    assert chars.shape == (200, 6, len(CHARACTERISTIC_NAMES)) and chars.dtype == np.float32
    last = chars[-1]
    # stock i trades about (1 + i) times the shares at 3^i times the price, with (1 + i)
    # times the volatility: both ranks rise with i
    assert (np.diff(last[:, 0]) > 0).all() and (np.diff(last[:, 1]) > 0).all()
    assert not chars[:REVERSAL].any()          # no characteristic is known on the first days


def test_without_volume_the_dollar_volume_column_is_zero():
    chars = stock_characteristics(_panel(fields=("close", "adj_close")))
    assert not chars[..., 0].any()
    assert chars[100:, :, 1].std() > 0.5


def test_a_missing_row_gets_zero_and_leaves_the_other_stocks_ranked_among_themselves():
    panel = _panel()
    mask = panel.mask.copy()
    mask[150, 4] = False
    chars = stock_characteristics(replace(panel, mask=mask))
    assert not chars[150, 4].any()
    np.testing.assert_allclose(
        chars[150, [0, 1, 2, 3, 5], 0],
        cross_sectional_ranks(raw_characteristics(panel)[150:151, [0, 1, 2, 3, 5]],
                              np.ones((1, 5), dtype=bool))[0, :, 0])


def test_no_characteristic_reads_a_later_row():
    """Changing every price and volume after date t leaves the characteristics up to t as
    they were."""
    panel = _panel()
    t = 120
    values = panel.values.copy()
    rng = np.random.default_rng(7)
    values[t + 1:] *= rng.uniform(0.2, 5.0, values[t + 1:].shape)
    changed = stock_characteristics(replace(panel, values=values))
    original = stock_characteristics(panel)
    np.testing.assert_array_equal(changed[: t + 1], original[: t + 1])
    assert not np.array_equal(changed[t + 1:], original[t + 1:])


def test_a_batch_carries_the_characteristics_of_its_stocks_on_each_window_end():
    data = build_feature_set(_panel())
    assert data.characteristics.shape == (200, 6, len(CHARACTERISTIC_NAMES))
    ends, stocks = np.array([100, 150, 199]), np.array([1, 4, 5])
    sub = make_batch(data, ends, 64, stocks)
    np.testing.assert_array_equal(sub.characteristics.numpy(),
                                  data.characteristics[ends][:, stocks])
    whole = make_batch(data, ends, 64)
    np.testing.assert_array_equal(whole.characteristics.numpy(), data.characteristics[ends])
