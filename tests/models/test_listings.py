"""A stock that lists after t changes nothing up to t.

Before its first row a stock's features are zeros. When such rows entered a batch they
moved every cross-sectional read (STORM's day tokens and market token, its peer read,
FactorVAE's portfolios) and the fitted weights, so a prediction at t depended on whether
the data held a stock that lists after t (found by an audit: DOW, listed 2019-03-20,
moved the other stocks' STORM scores by up to 0.5 before its listing). Windows now hold
only the stocks listed by their end (`storm_bt.models.neural.training.listed_columns`).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from storm_bt.data import load_panel
from storm_bt.experiments.factors import code_usage
from storm_bt.features.dataset import build_feature_set, make_split
from storm_bt.models import model_spec
from storm_bt.models.neural.checkpoint import data_identity

torch.set_num_threads(1)

OTHERS = ["AAPL", "JPM", "KO", "MSFT"]
LISTED_LATER = "DOW"            # first row 2019-03-20
SPLIT = ("2012-06-01", "2016-06-01", "2017-06-01")


@pytest.fixture(scope="module")
def panels(shared_data_dir):
    raw = pd.read_csv(shared_data_dir / "dj30_daily.csv.gz")
    raw = raw[raw.ticker.isin([*OTHERS, LISTED_LATER])
              & raw.date.between("2012-01-01", "2021-12-31")]
    return load_panel(raw), load_panel(raw[raw.ticker != LISTED_LATER])


def _fit_predict(name: str, panel, start: str, end: str) -> pd.DataFrame:
    data = build_feature_set(panel)
    split = make_split(panel.dates, *SPLIT, min_history=64)
    predictor = model_spec(name).load()(preset="tiny", epochs=1, num_threads=1,
                                        cache_dir=None, seed=1)
    return predictor.fit(data, split).predict(data, start, end)


@pytest.mark.parametrize("name", ["storm", "storm-ts", "factorvae"])
def test_a_stock_listed_after_t_changes_no_fit_or_score_up_to_t(panels, name):
    with_it, without = panels
    scores = _fit_predict(name, with_it, SPLIT[2], "2019-03-19")
    alone = _fit_predict(name, without, SPLIT[2], "2019-03-19")
    np.testing.assert_array_equal(scores[OTHERS].to_numpy(), alone[OTHERS].to_numpy())
    assert scores[LISTED_LATER].isna().all()          # no score before its first row


def test_factor_outputs_cover_every_stock_across_a_listing(panels):
    with_it, _ = panels
    data = build_feature_set(with_it)
    split = make_split(with_it.dates, *SPLIT, min_history=64)
    storm = model_spec("storm").load()(preset="tiny", epochs=1, num_threads=1, cache_dir=None,
                                       seed=1).fit(data, split)
    out = storm.factors(data, "2019-03-01", "2019-04-30")      # DOW lists inside the range
    s = len(data.tickers)
    dow = data.tickers.index(LISTED_LATER)
    listed = data.first_rows[dow]
    before = np.asarray(out["dates"] < data.dates[listed])
    codes = out["codes_ts"].reshape(len(out["dates"]), -1, s)
    assert (codes[before][:, :, dow] == -1).all() and (codes[~before] >= 0).all()
    assert np.isnan(out["z_ts"].reshape(len(out["dates"]), -1, s, out["z_ts"].shape[-1])
                    [before][:, :, dow]).all()
    # the factor sheet's code counts skip them (a -1 used to end the factors run)
    assert code_usage(out)["TS"].sum() == (codes >= 0).sum()


def test_only_fits_of_data_with_later_listings_change_their_checkpoint_keys(panels):
    with_it, without = panels
    split = make_split(with_it.dates, *SPLIT, min_history=64)
    assert "windows_hold" in data_identity(build_feature_set(with_it), split)
    assert "windows_hold" not in data_identity(build_feature_set(without), split)
