"""ts_relative: the TS branch patches each stock's stem minus the day's cross-sectional mean."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from planted import planted_feature_set, planted_split, uneven_feature_set
from storm_bt.errors import StormBtError
from storm_bt.models.neural.batch import make_batch
from storm_bt.models.storm import StormModel, small, tiny
from storm_bt.models.storm.predictor import StormCSPredictor, StormPredictor, StormTSPredictor
from storm_bt.models.storm.synthetic import random_batch

torch.set_num_threads(1)

DJ30 = small.with_data(29, 152, ("open", "high", "low", "close", "adj_close"))


def _ts_tokens(config, batch):
    torch.manual_seed(0)
    model = StormModel(config).eval()
    with torch.no_grad():
        return model._encode(batch).z["ts"]


@pytest.mark.parametrize("relative", [True, False])
def test_relative_ts_tokens_ignore_a_move_of_the_whole_cross_section(relative):
    """Adding one vector c_{b,t} to every stock's features on a day shifts the linear stem
    by the same vector for every stock; the relative TS view subtracts it again (the fusion's
    gates are closed at initialisation, so the CS view does not reach the TS tokens)."""
    config = replace(DJ30, ts_relative=relative)
    batch = random_batch(config)
    day_move = torch.randn(batch.x.shape[0], batch.x.shape[1], 1, batch.x.shape[3])
    moved = replace(batch, x=batch.x + day_move)
    before, after = _ts_tokens(config, batch), _ts_tokens(config, moved)
    if relative:
        torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-4)
    else:
        assert (after - before).abs().max() > 1e-2


def test_relative_ts_tokens_still_see_each_stocks_own_path():
    config = replace(DJ30, ts_relative=True)
    batch = random_batch(config)
    x = batch.x.clone()
    x[:, :, 0] += torch.randn(x.shape[0], x.shape[1], x.shape[3])   # one stock moves alone
    after = _ts_tokens(config, replace(batch, x=x))
    assert (after - _ts_tokens(config, batch)).abs().max() > 1e-2


def test_with_the_universe_context_a_subsets_ts_tokens_are_the_whole_universes():
    """cs_context="universe": a stock's relative path is taken against every stock's mean
    (m_t W' + b from the batch's universe moments), so a training subset sees each of its
    stocks as prediction on the whole universe does."""
    data = uneven_feature_set(n_stocks=12)
    config = replace(tiny, ts_relative=True, cs_context="universe").with_data(
        12, data.n_features, ("open", "high", "low", "close", "adj_close"))
    ends, subset = np.array([90, 180]), np.array([0, 3, 4, 9])

    def tokens(batch, n_stocks):
        torch.manual_seed(0)
        model = StormModel(config).eval()
        with torch.no_grad():
            z = model._encode(batch).z["ts"]
        return z.reshape(len(ends), n_stocks, *z.shape[1:])

    whole = tokens(make_batch(data, ends, tiny.history), 12)[:, subset]
    universe = tokens(make_batch(data, ends, tiny.history, subset, universe=True), len(subset))
    # the subset read as if it were the universe (a subset batch without the universe's
    # cross-section is refused: test_storm_universe_context)
    own = tokens(replace(make_batch(data, ends, tiny.history, subset), subset=False),
                 len(subset))
    torch.testing.assert_close(universe, whole, rtol=1e-4, atol=1e-4)
    assert (own - whole).abs().max() > 1e-2        # the subset's own mean differs


@pytest.mark.parametrize("change", [{"branches": "ts", "fusion": "none", "factor_tokens": "both"},
                                    {"ts_input": "features"}])
def test_ts_relative_is_refused_without_a_cross_section_to_subtract(change):
    with pytest.raises(StormBtError, match="ts_relative=True needs both branches"):
        replace(DJ30, ts_relative=True, **change)


def test_ts_relative_keys_the_dual_model_only_when_true_and_never_an_ablation():
    data = planted_feature_set()
    split = planted_split(data)

    def payload(cls, **kw):
        return cls(preset="small", seed=1, cache_dir=None, **kw)._payload_expected(data, split)

    assert "ts_relative" not in payload(StormPredictor)["model_config"]
    assert payload(StormPredictor)["key"] == payload(StormPredictor, ts_relative=False)["key"]
    assert payload(StormPredictor)["key"] != payload(StormPredictor, ts_relative=True)["key"]
    for cls in (StormTSPredictor, StormCSPredictor):
        assert "ts_relative" not in payload(cls)["model_config"], cls.name
        with pytest.raises(StormBtError, match="ts_relative=True needs both branches"):
            payload(cls, ts_relative=True)
