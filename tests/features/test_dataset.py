"""Labels, splits and windows of the model inputs; no window or scaler reads past its date."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from storm_bt.features.dataset import (build_feature_set, forward_return, make_split,
                                      next_day_return, with_label_horizon)
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


def test_an_h_day_label_is_the_return_from_close_e_to_close_e_plus_h(small_panel):
    y5 = forward_return(next_day_return(small_panel), 5)
    adj = small_panel.field("adj_close")
    expected = (adj.shift(-5) / adj - 1).to_numpy()
    np.testing.assert_allclose(y5[:-5], expected[:-5], rtol=1e-10, atol=1e-14)
    assert np.isnan(y5[-5:]).all()                   # e+5 is past the last date
    y = next_day_return(small_panel)
    y[100, 2] = np.nan                               # one unknown day inside the h days
    gap = forward_return(y, 3)
    assert np.isnan(gap[98:101, 2]).all() and np.isfinite(gap[[97, 101], 2]).all()
    np.testing.assert_array_equal(forward_return(y, 1), y)


def test_h_day_training_samples_keep_all_h_days_inside_the_range(small_data):
    start, end = pd.Timestamp("2014-01-01"), pd.Timestamp("2014-12-31")
    five = with_label_horizon(small_data, 5)
    assert five.label_horizon == 5 and five.features is small_data.features
    ends = five.sample_ends(start, end, history=64)
    assert small_data.dates[ends + 5].max() <= end < small_data.dates[ends.max() + 6]
    assert np.isfinite(five.labels[ends]).any(axis=1).all()
    # validation and prediction keep the next-day label: the original set is unchanged
    assert small_data.label_horizon == 1
    assert len(small_data.sample_ends(start, end, history=64)) == len(ends) + 4
    with pytest.raises(StormBtError, match="already span 5 days"):
        with_label_horizon(five, 3)


def test_h_day_labels_up_to_t_ignore_a_perturbed_future(small_panel):
    from dataclasses import replace

    values = small_panel.values.copy()
    t = small_panel.dates.get_loc(pd.Timestamp("2015-06-30"))
    values[t + 1:] *= np.random.default_rng(1).uniform(0.5, 1.5, size=values[t + 1:].shape)
    base = with_label_horizon(build_feature_set(small_panel), 5)
    perturbed = with_label_horizon(build_feature_set(replace(small_panel, values=values)), 5)
    # y_5[e] reads the closes of e .. e+5: every label whose h days end by t is unchanged
    np.testing.assert_array_equal(perturbed.labels[: t - 4], base.labels[: t - 4])
    assert not np.allclose(perturbed.labels[t - 4], base.labels[t - 4])
    # and so is every training sample of a range that ends at t
    lo = small_panel.dates[0]
    np.testing.assert_array_equal(perturbed.sample_ends(lo, small_panel.dates[t], 64),
                                  base.sample_ends(lo, small_panel.dates[t], 64))


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
    assert split.source == "embedded"


def test_default_split_for_data_covering_the_paper(dj30_panel):
    split = make_split(dj30_panel.dates)
    assert split.as_dict() == {"train_start": "2008-04-01", "valid_start": "2019-04-01",
                               "test_start": "2021-04-01", "test_end": "2024-03-08"}
    assert split.describe()["source"] == "paper"


def _count(dates, start, end_exclusive=None):
    keep = dates >= start if end_exclusive is None else (dates >= start) & (dates < end_exclusive)
    return int(keep.sum())


def test_split_from_data_without_the_paper_years(dj30_panel, caplog):
    """The issue's case: 2015..2024 and no flags: the last 3 years test, 2 before valid."""
    dates = dj30_panel.since("2015-01-01").dates
    with caplog.at_level("INFO", logger="storm_bt.features.dataset"):
        split = make_split(dates)
    # first trading day after 2021-03-08 (3 years before 2024-03-08), first on/after 2019-03-09
    assert split.as_dict() == {"train_start": "2015-01-02", "valid_start": "2019-03-11",
                               "test_start": "2021-03-09", "test_end": "2024-03-08"}
    record = split.describe()
    assert record["source"] == "data" and "the last 3 years" in record["reason"]
    assert "split (data): train 2015-01-02 .. 2019-03-10" in caplog.text


def test_split_from_a_short_history_is_cut_3_2_3(dj30_panel):
    dates = dj30_panel.since("2020-01-01").until("2022-12-31").dates
    split = make_split(dates)
    n = len(dates)
    assert split.source == "data"
    assert _count(dates, split.test_start) == round(3 / 8 * n)
    assert _count(dates, split.valid_start, split.test_start) == round(2 / 8 * n)
    assert split.train_start == dates[0]


def test_split_from_a_very_short_history_keeps_the_minimum_training(dj30_panel):
    dates = dj30_panel.since("2022-06-01").dates  # about 445 days
    split = make_split(dates, min_train_days=252)
    assert _count(dates, split.train_start, split.valid_start) == 252
    rest = len(dates) - 252
    assert _count(dates, split.valid_start, split.test_start) == round(rest * 2 / 5)
    with pytest.raises(StormBtError, match=r"too little data to choose a split: \d+ trading days "
                                           r"from 2023-06-01 to 2024-03-08; the models need 252"):
        make_split(dj30_panel.since("2023-06-01").dates)


@pytest.mark.parametrize("min_history", [0, 64])
def test_any_short_calendar_gives_a_split_or_says_the_data_is_too_short(min_history):
    """A 47-day file (with the 64-day history the models need) ended in an IndexError
    traceback: the test share of one day rounded to none and the test start fell past the
    last date."""
    for n in (1, 2, 3, 47, 64, 65, 66, 70, 300, 700):
        dates = pd.bdate_range("2024-01-02", periods=n)
        try:
            split = make_split(dates, min_history=min_history)
        except StormBtError as error:
            assert "too little" in str(error), (n, str(error))
        else:
            assert dates[0] <= split.train_start < split.valid_start < split.test_start
            assert split.test_start < split.test_end == dates[-1]


def test_split_from_data_respects_min_history(dj30_panel):
    dates = dj30_panel.since("2015-01-01").dates
    assert make_split(dates, min_history=60).train_start == dates[60]


def test_split_from_data_is_anchored_on_given_dates(dj30_panel):
    dates = dj30_panel.since("2015-01-01").dates
    split = make_split(dates, test_start="2022-01-03")
    assert split.test_start == pd.Timestamp("2022-01-03")
    assert split.valid_start == dates[dates >= pd.Timestamp("2020-01-03")][0]
    assert "--test-start given" in split.reason


def test_an_explicit_date_outside_the_data_stays_an_error(dj30_panel):
    dates = dj30_panel.since("2015-01-01").dates
    with pytest.raises(StormBtError, match=r"^--train-start 2008-01-01 is outside the data "
                                           r"\(2015-01-02 .. 2024-03-08\)"):
        make_split(dates, train_start="2008-01-01")


def test_a_default_in_conflict_with_a_flag_is_named_as_a_default(dj30_panel):
    dates = dj30_panel.since("2015-01-01").dates
    with pytest.raises(StormBtError, match=r"--valid-start 2023-06-01 must be before --test-start "
                                           r"2021-03-09 \(default from data; set --test-start\)"):
        make_split(dates, valid_start="2023-06-01")


def test_flags_given_in_full_are_kept(embedded_panel):
    split = make_split(embedded_panel.dates, "2010-01-04", "2015-01-02", "2017-01-03", "2018-12-31")
    assert split.as_dict() == {"train_start": "2010-01-04", "valid_start": "2015-01-02",
                               "test_start": "2017-01-03", "test_end": "2018-12-31"}
    assert split.source == "flags"


def test_split_identity_is_its_dates(embedded_panel):
    split = make_split(embedded_panel.dates)
    same = type(split)(split.train_start, split.valid_start, split.test_start, split.test_end)
    assert same == split and same.as_dict() == split.as_dict()
    assert set(split.as_dict()) == {"train_start", "valid_start", "test_start", "test_end"}


@pytest.mark.parametrize("kwargs, pattern", [
    (dict(test_start="2030-01-01", test_end="2031-01-01"), r"--test-start 2030-01-01 is outside the data"),
    (dict(valid_start="2021-01-01", test_start="2020-01-01"), r"--valid-start 2021-01-01 must be before --test-start"),
    (dict(train_start="2017-06-01"), r"too little training data: \d+ days"),
    (dict(test_end="yesterday-ish"), r"--test-end 'yesterday-ish' is not a date"),
    (dict(train_start="01/06/2012"), r"--train-start '01/06/2012' is not a date in YYYY-MM-DD form"),
    (dict(test_start="31/03/2021"), r"--test-start '31/03/2021' is not a date in YYYY-MM-DD form"),
])
def test_bad_split_dates(embedded_panel, kwargs, pattern):
    with pytest.raises(StormBtError, match=pattern):
        make_split(embedded_panel.dates, **kwargs)


@pytest.mark.parametrize("kwargs, pattern", [
    # an explicit 2-day test period used to be scored (a 127% annual return)
    (dict(test_start="2024-03-07", test_end="2024-03-08"),
     r"the test period from --test-start 2024-03-07 to --test-end 2024-03-08 has 2 trading "
     r"days; give it at least 20"),
    (dict(valid_start="2023-12-20", test_start="2024-01-05"),
     r"the validation period from --valid-start 2023-12-20 to --test-start 2024-01-05 has 12"),
    # it blamed two defaults for an order the given --test-start forced
    (dict(test_start="2016-06-01"),
     r"--test-start 2016-06-01 leaves 43 trading days before it, from 2016-04-01 after 64 "
     r"days of history; training and validation need at least 252 \+ 20: give a later"),
    # it counted -22 days and did not name --test-end
    (dict(test_end="2016-03-01"), r"0 trading days from 2016-04-01 to 2016-03-01 .* give a "
                                  r"longer history or a later --test-end"),
    # it suggested setting --test-end, which the data cannot hold either
    (dict(test_start="2030-01-01"), r"--test-start 2030-01-01 is outside the data"),
])
def test_a_split_that_leaves_too_little_room_names_the_flag_at_fault(kwargs, pattern):
    dates = pd.bdate_range("2016-01-04", "2024-03-08")   # too short for a default split
    with pytest.raises(StormBtError, match=pattern):
        make_split(dates, min_history=64, **kwargs)


@pytest.mark.parametrize("test_end", ["2022-06-30", "2023-03-31", "2024-03-08"])
def test_the_default_split_for_a_test_end_ignores_the_data_after_it(dj30_panel, test_end):
    """With --test-end, the default split chosen on the whole file used to differ from the
    one chosen on the file cut there (the paper's split against the embedded sample's):
    data after the test end is never read, so it must not choose the split either."""
    dates = dj30_panel.dates
    cut = dates[dates <= pd.Timestamp(test_end)]
    whole = make_split(dates, test_end=test_end, min_history=64)
    assert whole.as_dict() == make_split(cut, test_end=test_end, min_history=64).as_dict()
