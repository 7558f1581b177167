"""cs_pool_queries: soft portfolios of the day's stocks in the CS day token."""
from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from planted import planted_feature_set, planted_split
from storm_bt.errors import StormBtError
from storm_bt.models.storm import StormModel, small
from storm_bt.models.storm.layers import cross_section_moments, soft_portfolios
from storm_bt.models.storm.predictor import StormCSPredictor, StormPredictor, StormTSPredictor
from storm_bt.models.storm.synthetic import random_batch

torch.set_num_threads(1)

DJ30 = small.with_data(29, 152, ("open", "high", "low", "close", "adj_close"))


def test_soft_portfolios_are_softmax_weighted_means_of_the_days_stocks():
    torch.manual_seed(0)
    u = torch.randn(2, 3, 5, 4)
    scores = torch.nn.Linear(4, 2, bias=False)
    got = soft_portfolios(u, scores).view(2, 3, 2, 4)
    for b, t, j in [(0, 0, 0), (1, 2, 1), (0, 1, 1)]:
        w = torch.softmax(u[b, t] @ scores.weight[j], dim=0)           # over the 5 stocks
        torch.testing.assert_close(got[b, t, j], (w[:, None] * u[b, t]).sum(0))
    # a score of zero weighs every stock equally: the cross-sectional mean
    torch.nn.init.zeros_(scores.weight)
    torch.testing.assert_close(soft_portfolios(u, scores).view(2, 3, 2, 4)[:, :, 0],
                               u.mean(dim=2))


def test_the_untrained_model_predicts_as_without_the_portfolios():
    """W_p starts at 0 and the scores draw from a forked generator: same seed, same
    predictions, and the other weights identical."""
    batch = random_batch(DJ30)

    def build(config):
        torch.manual_seed(3)
        return StormModel(config).eval()

    base, pooled = build(DJ30), build(replace(DJ30, cs_pool_queries=4))
    torch.testing.assert_close(pooled.predict(batch), base.predict(batch), rtol=0, atol=0)
    extra = {k for k in pooled.state_dict() if k not in base.state_dict()}
    assert extra == {"branches.cs.patching.scores.weight", "branches.cs.patching.pooled.weight",
                     "branches.cs.patching.pooled.bias"}
    for key, value in base.state_dict().items():
        torch.testing.assert_close(pooled.state_dict()[key], value, rtol=0, atol=0)


def test_after_a_step_the_portfolios_reach_the_cs_token():
    """The first step trains W_p away from 0; the day token then adds the portfolios'
    part to the moments' part."""
    config = replace(DJ30, cs_pool_queries=4)
    torch.manual_seed(0)
    model = StormModel(config).train()
    batch = random_batch(config)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    model.losses(batch)["total"].backward()
    patching = model.branches["cs"].patching
    assert patching.pooled.weight.grad.abs().sum() > 0
    opt.step()
    u = torch.randn(2, config.history, 10, config.stem_dim)
    with torch.no_grad():
        extra = patching(u) - patching.embed(cross_section_moments(u))
        torch.testing.assert_close(extra, patching.pooled(soft_portfolios(u, patching.scores)))
    assert extra.abs().max() > 1e-3


def test_refusals_and_keys():
    with pytest.raises(StormBtError, match="cs_pool_queries=-1: must be >= 0"):
        replace(DJ30, cs_pool_queries=-1)
    with pytest.raises(StormBtError, match="cs_pool_queries=4 needs cs_context='batch'"):
        replace(DJ30, cs_pool_queries=4, cs_context="universe")
    data = planted_feature_set()
    split = planted_split(data)

    def payload(cls, **kw):
        return cls(preset="small", seed=1, cache_dir=None, **kw)._payload_expected(data, split)

    assert "cs_pool_queries" not in payload(StormPredictor)["model_config"]
    assert payload(StormPredictor)["key"] == payload(StormPredictor, cs_pool_queries=0)["key"]
    assert payload(StormPredictor)["key"] != payload(StormPredictor, cs_pool_queries=4)["key"]
    assert payload(StormCSPredictor)["key"] != payload(StormCSPredictor, cs_pool_queries=4)["key"]
    assert "cs_pool_queries" not in payload(StormTSPredictor, cs_pool_queries=4)["model_config"]
