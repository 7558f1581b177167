"""The agents' states: STORM token pooling by hand, standardisation on the fit range only, the
training arrays on real trading days, and no look-ahead in the factor states."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from storm_bt.data.panel import Panel
from storm_bt.trading.states import (factor_state_from_output, pool_tokens, standardise,
                                     training_arrays)

torch.set_num_threads(1)


def test_ts_tokens_of_the_chosen_stock_are_pooled():
    n, blocks, stocks, d = 3, 4, 5, 2
    rng = np.random.default_rng(0)
    out = {"z_ts": rng.normal(size=(n, blocks * stocks, d)).astype(np.float32),
           "q_ts": rng.normal(size=(n, blocks * stocks, d)).astype(np.float32),
           "z_cs": rng.normal(size=(n, 6, d)).astype(np.float32),
           "q_cs": rng.normal(size=(n, 6, d)).astype(np.float32)}
    (state,) = factor_state_from_output(out, [3], stocks)
    # stock 3's tokens sit at j * S + 3 (time-major), phi = [z || q]
    own = np.concatenate([out["z_ts"][:, 3::stocks], out["q_ts"][:, 3::stocks]], axis=-1)
    cs = np.concatenate([out["z_cs"], out["q_cs"]], axis=-1)
    want = np.concatenate([cs.mean(1), cs[:, -1], own.mean(1), own[:, -1]], axis=1)
    np.testing.assert_allclose(state, want, rtol=1e-6)
    assert state.shape == (n, 4 * 2 * d)
    np.testing.assert_allclose(pool_tokens(own)[:, 2 * d:], own[:, blocks - 1])


def test_standardise_uses_the_fit_range_only():
    days = pd.bdate_range("2020-01-01", periods=10)
    frame = pd.DataFrame({"a": np.arange(10.0), "b": 3.0}, index=days)
    z = standardise(frame, days[0], days[4])
    fit = np.arange(5.0)
    np.testing.assert_allclose(z["a"], np.clip((np.arange(10.0) - fit.mean()) / fit.std(), -5, 5))
    assert (z["b"] == 0).all()  # a constant column carries nothing
    later = frame.copy()
    later.iloc[5:] = 1e6  # the future changes no standardised past
    pd.testing.assert_frame_equal(standardise(later, days[0], days[4]).iloc[:5], z.iloc[:5])


def test_training_arrays_keep_the_stocks_real_days_with_a_complete_state():
    days = pd.bdate_range("2021-01-04", periods=6)
    tickers = ("AAA", "BBB")
    fields = ("close", "adj_close")
    values = np.arange(6 * 2 * 2, dtype=float).reshape(6, 2, 2) + 1.0
    mask = np.ones((6, 2), dtype=bool)
    mask[2, 1] = False  # BBB has no row on day 2
    panel = Panel(days, tickers, fields, values, mask, "<test>")
    states = pd.DataFrame({"x": [0.1, 0.2, 0.3, np.nan, 0.5, 0.6]}, index=days)
    x, prices = training_arrays(states, panel, "BBB", days[1], days[5])
    # days 1..5, less day 2 (no row) and day 3 (NaN state)
    np.testing.assert_allclose(x[:, 0], [0.2, 0.5, 0.6])
    np.testing.assert_array_equal(prices, values[[1, 4, 5], 1, 1])
    assert x.dtype == np.float32 and len(x) == len(prices)


@pytest.mark.slow
def test_storm_states_ignore_data_after_their_date(dj30_panel):
    """The factor state of day t is the same whatever happens after t."""
    from storm_bt.features.dataset import build_feature_set, make_split
    from storm_bt.models import make_predictor
    from storm_bt.models.registry import ModelSettings
    from storm_bt.trading.states import storm_states

    panel = dj30_panel.select(["AAPL", "IBM", "JPM", "MSFT"]).since("2016-01-04")
    panel = panel.until("2020-12-31")
    split = make_split(panel.dates, "2017-01-03", "2019-01-02", "2020-01-02", min_train_days=200)
    data = build_feature_set(panel)
    settings = ModelSettings(preset="tiny", epochs=1, threads=1, cache_dir=None)
    storm = make_predictor("storm", seed=1, settings=settings).fit(data, split)
    cut = pd.Timestamp("2020-06-30")
    values = panel.values.copy()
    values[panel.dates > cut] *= np.linspace(0.5, 2.0, len(panel.tickers))[None, :, None]
    future = Panel(panel.dates, panel.tickers, panel.fields, values, panel.mask, panel.source)
    # chunks of 50 days: the states are cut into pieces across the cut date too
    a = storm_states(storm, data, ["JPM", "AAPL"], "2019-06-03", "2020-12-31", chunk=50)
    b = storm_states(storm, build_feature_set(future), ["JPM", "AAPL"], "2019-06-03",
                     "2020-12-31", chunk=50)
    whole = storm_states(storm, data, ["JPM", "AAPL"], "2019-06-03", "2020-12-31", chunk=1000)
    for ticker in ("JPM", "AAPL"):
        pd.testing.assert_frame_equal(a[ticker].loc[:cut], b[ticker].loc[:cut])
        assert not np.allclose(a[ticker].loc[cut:].iloc[1:], b[ticker].loc[cut:].iloc[1:])
        np.testing.assert_allclose(a[ticker], whole[ticker], rtol=1e-5, atol=1e-6)
        assert a[ticker].index[0] == pd.Timestamp("2019-06-03")
    assert not np.allclose(a["JPM"], a["AAPL"])  # each stock has its own TS tokens
