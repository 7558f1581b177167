"""Labels, splits and windows of the model inputs; no window or scaler reads past its date."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from storm_bt.dataset import build_feature_set, make_split, next_day_return
from storm_bt.errors import StormBtError


@pytest.fixture(scope="module")
def small_panel(embedded_panel):
    return embedded_panel.select(["AAPL", "JPM", "KO", "XOM", "MSFT"]).since("2012-01-01").until("2016-12-31")


@pytest.fixture(scope="module")
def small_data(small_panel):
    return build_feature_set(small_panel)


def test_label_is_next_day_total_return(small_panel):
    y = next_day_return(small_panel)
    adj = small_panel.field("adj_close")
    expected = (adj.shift(-1) / adj - 1).to_numpy()
    np.testing.assert_allclose(y[:-1], expected[:-1])
    assert np.isnan(y[-1]).all()


def test_windows_are_the_rows_up_to_their_end(small_data):
    ends = np.array([63, 100, 500])
    w = small_data.windows(ends, 64)
    assert w.shape == (3, 64, 5, small_data.n_features)
    for k, e in enumerate(ends):
        np.testing.assert_array_equal(w[k], small_data.features[e - 63: e + 1])


def test_training_samples_keep_their_label_inside_the_range(small_data):
    start, end = pd.Timestamp("2014-01-01"), pd.Timestamp("2014-12-31")
    ends = small_data.sample_ends(start, end, history=64)
    assert small_data.dates[ends].min() >= start
    assert small_data.dates[ends + 1].max() <= end  # the label's day t+1 is inside too


def test_features_and_labels_up_to_t_ignore_the_future(small_panel):
    """Cut the panel at t: every feature, scaled value and label dated before t is unchanged."""
    full = build_feature_set(small_panel)
    cut_date = pd.Timestamp("2015-06-30")
    cut = build_feature_set(small_panel.until(cut_date))
    n = len(cut.dates)
    np.testing.assert_array_equal(cut.features, full.features[:n])
    np.testing.assert_array_equal(cut.price_mean, full.price_mean[:n])
    # the label of the last kept day needs day t+1: unknown in the cut data, known in full
    np.testing.assert_array_equal(cut.labels[: n - 1], full.labels[: n - 1])
    assert np.isnan(cut.labels[n - 1]).all()


def test_features_ignore_a_perturbed_future(small_panel):
    from dataclasses import replace

    values = small_panel.values.copy()
    t = small_panel.dates.get_loc(pd.Timestamp("2015-06-30"))
    values[t + 1:] *= np.random.default_rng(0).uniform(0.5, 1.5, size=values[t + 1:].shape)
    perturbed = build_feature_set(replace(small_panel, values=values))
    base = build_feature_set(small_panel)
    np.testing.assert_array_equal(perturbed.features[: t + 1], base.features[: t + 1])
    np.testing.assert_array_equal(perturbed.labels[:t], base.labels[:t])


def test_default_split_for_the_embedded_sample(embedded_panel):
    split = make_split(embedded_panel.dates)
    assert split.as_dict() == {"train_start": "2008-01-01", "valid_start": "2018-01-01",
                               "test_start": "2020-01-01", "test_end": "2022-12-28"}


def test_default_split_for_data_covering_the_paper(dj30_panel):
    split = make_split(dj30_panel.dates)
    assert split.as_dict() == {"train_start": "2008-04-01", "valid_start": "2019-04-01",
                               "test_start": "2021-04-01", "test_end": "2024-03-08"}


@pytest.mark.parametrize("kwargs, pattern", [
    (dict(test_start="2030-01-01", test_end="2031-01-01"), r"--test-start 2030-01-01 is outside the data"),
    (dict(valid_start="2021-01-01", test_start="2020-01-01"), r"--valid-start 2021-01-01 must be before --test-start"),
    (dict(train_start="2017-06-01"), r"too little training data: \d+ days"),
    (dict(test_end="yesterday-ish"), r"--test-end 'yesterday-ish' is not a date"),
])
def test_bad_split_dates(embedded_panel, kwargs, pattern):
    with pytest.raises(StormBtError, match=pattern):
        make_split(embedded_panel.dates, **kwargs)
