"""A point-in-time universe: a stock is traded, scored and trained on only while a member."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from storm_bt.errors import StormBtError
from storm_bt.experiments import DataConfig, ModelSettings, PortfolioConfig, run_portfolio
from storm_bt.experiments.data import (load_experiment_data, members_only, membership_frame,
                                       restrict_to_members)
from storm_bt.features.dataset import build_feature_set, with_label_horizon
from storm_bt.models.neural.checkpoint import data_identity

TICKERS = ("AAPL", "AMD", "BAC", "JNJ", "JPM", "KO", "MSFT", "PG", "XOM", "WMT")


@pytest.fixture(scope="module")
def membership_file(tmp_path_factory):
    """Every ticker a member throughout, but KO leaves on 2018-04-02 and XOM joins in 2014."""
    rows = [(t, "1990-01-01", "") for t in TICKERS if t not in ("KO", "XOM")]
    rows += [("KO", "1990-01-01", "2018-04-02"), ("XOM", "2014-01-02", "")]
    path = tmp_path_factory.mktemp("members") / "members.csv"
    pd.DataFrame(rows, columns=["ticker", "start_date", "end_date"]).to_csv(path, index=False)
    return path


def _data(path) -> DataConfig:
    return DataConfig(tickers=TICKERS, train_start="2012-01-01", valid_start="2016-01-01",
                      test_start="2018-01-01", test_end="2018-09-28", membership=str(path))


def test_non_member_days_have_no_label_and_no_prediction(membership_file):
    config = _data(membership_file)
    panel, split = load_experiment_data(config)
    member = membership_frame(config, panel)
    data = restrict_to_members(build_feature_set(panel), member)
    ko, xom = data.tickers.index("KO"), data.tickers.index("XOM")
    after = data.dates >= "2018-04-02"
    before = data.dates < "2014-01-02"
    assert np.isnan(data.labels[after, ko]).all()
    assert np.isnan(data.labels[before, xom]).all()
    assert np.isfinite(data.labels[(data.dates >= "2015-01-01") & ~after, ko]).mean() > 0.99
    preds = pd.DataFrame(1.0, index=data.dates[-100:], columns=list(data.tickers))
    kept = members_only(preds, member)
    assert kept.loc[kept.index >= "2018-04-02", "KO"].isna().all()
    assert kept.loc[kept.index < "2018-04-02", "KO"].notna().all()


def test_a_point_in_time_fit_has_its_own_checkpoint_key(membership_file):
    """Hidden labels train another model, so they must change the checkpoint key (a
    point-in-time run once silently reused the fit on every label); a universe that hides
    nothing, and no universe, leave the key as it was."""
    config = _data(membership_file)
    panel, split = load_experiment_data(config)
    data = build_feature_set(panel)
    every_label = data_identity(data, split)
    assert "hidden_labels" not in every_label
    point_in_time = restrict_to_members(data, membership_frame(config, panel))
    assert point_in_time.hidden_labels is not None
    assert data_identity(point_in_time, split) != every_label
    always = pd.DataFrame(True, index=data.dates, columns=list(data.tickers))
    assert data_identity(restrict_to_members(data, always), split) == every_label
    assert data_identity(restrict_to_members(data, None), split) == every_label
    # the training loop's h-day labels keep the mark
    assert with_label_horizon(point_in_time, 5).hidden_labels == point_in_time.hidden_labels


@pytest.mark.slow
def test_a_stock_that_leaves_the_index_is_sold(membership_file):
    result = run_portfolio(PortfolioConfig(data=_data(membership_file), model="lightgbm",
                                           model_settings=ModelSettings(threads=1), seed=1))
    w = result.weights.fillna(0.0)
    assert (w.loc[w.index < "2018-04-02", "KO"] > 0.01).any()  # held while a member
    assert (w.loc[w.index >= "2018-04-02", "KO"] == 0).all()
    assert result.predictions.loc[result.predictions.index >= "2018-04-02", "KO"].isna().all()


def test_a_missing_membership_file_is_a_user_error(tmp_path):
    with pytest.raises(StormBtError, match="--membership .*no such file"):
        DataConfig(membership=str(tmp_path / "nope.csv"))
