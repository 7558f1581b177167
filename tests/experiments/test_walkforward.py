"""Walk-forward refits: the schedule, and no look-ahead through the refits."""
from __future__ import annotations

import dataclasses

import pandas as pd
import pytest

from storm_bt.errors import StormBtError
from storm_bt.experiments import DataConfig, ModelSettings, PortfolioConfig
from storm_bt.experiments.data import load_experiment_data
from storm_bt.experiments.walkforward import pretest_split, refit_splits, walk_forward
from storm_bt.features.dataset import build_feature_set

TICKERS = ("AAPL", "AMD", "BAC", "JNJ", "JPM", "KO", "MSFT", "PG", "XOM", "WMT")


def _data(test_end: str):
    return load_experiment_data(DataConfig(tickers=TICKERS, train_start="2012-01-01",
                                           valid_start="2016-01-01", test_start="2017-01-01",
                                           test_end=test_end))


def test_refit_blocks_tile_the_test_period_each_after_its_own_validation():
    panel, split = _data("2017-12-29")
    dates = panel.dates
    splits = refit_splits(dates, split, every=63)
    test_days = dates[(dates >= split.test_start) & (dates <= split.test_end)]
    covered = [d for s in splits for d in dates[(dates >= s.test_start) & (dates <= s.test_end)]]
    assert covered == list(test_days)  # every test day once, in order
    valid_len = ((dates >= split.valid_start) & (dates < split.test_start)).sum()
    first = splits[0]  # block 0 trains and validates as the single fit does
    assert (first.train_start, first.valid_start, first.test_start) == \
        (split.train_start, split.valid_start, split.test_start)
    for s in splits[1:]:
        assert ((dates >= s.valid_start) & (dates < s.test_start)).sum() == valid_len
        assert s.train_start == split.train_start  # expanding
        assert s.valid_start > s.train_start
    rolling = refit_splits(dates, split, every=63, train_window=500)
    for s in rolling[1:]:
        assert ((dates >= s.train_start) & (dates < s.valid_start)).sum() == 500


def test_pretest_blocks_end_before_the_cutoff_and_each_is_out_of_sample():
    dates = pd.bdate_range("2008-01-01", "2021-12-31")
    cutoff = pd.Timestamp("2021-04-01")
    split = pretest_split(dates, cutoff, folds=4, block_days=252, valid_days=504,
                          train_start=pd.Timestamp("2008-04-01"))
    blocks = refit_splits(dates, split, 252)
    assert len(blocks) == 4
    scored = [d for s in blocks for d in dates[(dates >= s.test_start) & (dates <= s.test_end)]]
    before = dates[dates < cutoff]
    assert scored == list(before[-4 * 252:-1])  # contiguous, in order, the last day left out
    # the last scored day's label is the return to the next trading day: still before cutoff
    assert dates[dates.get_loc(scored[-1]) + 1] < cutoff
    for s in blocks:
        assert s.train_start < s.valid_start < s.test_start <= s.test_end < cutoff
        assert ((dates >= s.valid_start) & (dates < s.test_start)).sum() == 504
    with pytest.raises(StormBtError, match="use fewer or shorter folds"):
        pretest_split(dates, cutoff, folds=12, block_days=252, valid_days=504,
                      train_start=pd.Timestamp("2008-04-01"))


def test_refit_settings_are_checked_when_the_config_is_built():
    with pytest.raises(StormBtError, match="--refit-every 0"):
        PortfolioConfig(refit_every=0)
    with pytest.raises(StormBtError, match="--train-window needs --refit-every"):
        PortfolioConfig(train_window=600)
    with pytest.raises(StormBtError, match="--train-window 20"):
        dataclasses.replace(PortfolioConfig(refit_every=63), train_window=20)


@pytest.mark.slow
def test_a_refit_prediction_at_t_ignores_the_data_after_t(tmp_path):
    settings = ModelSettings(threads=1, cache_dir=str(tmp_path))
    runs = {}
    for end in ("2017-08-31", "2017-12-29"):
        panel, split = _data(end)
        data = build_feature_set(panel)
        runs[end] = walk_forward("lightgbm", 1, settings, data, split, every=42)
    cut, full = runs["2017-08-31"], runs["2017-12-29"]
    assert len(full.splits) > len(cut.splits) >= 3
    shared = full.predictions.loc[: cut.predictions.index[-1]]
    pd.testing.assert_frame_equal(cut.predictions, shared)
    # The refits really differ: a model refitted later predicts differently from block 0's.
    assert not cut.predictions.iloc[-1].equals(cut.predictions.iloc[0])
