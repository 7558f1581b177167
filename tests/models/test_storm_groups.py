"""cs_groups: groups of stocks made from training-period returns, read by the CS branch."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from planted import planted_feature_set, planted_split
from storm_bt.errors import StormBtError
from storm_bt.features.groups import return_groups
from storm_bt.models.neural.batch import make_batch
from storm_bt.models.storm import StormConfig, StormModel, small, tiny
from storm_bt.models.storm.layers import group_moments
from storm_bt.models.storm.predictor import StormPredictor, StormTSPredictor
from storm_bt.models.storm.synthetic import random_batch

torch.set_num_threads(1)

PLANTED = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2])


def grouped_returns(seed: int = 0):
    """12 stocks whose returns are the market, plus one of three group factors, plus noise;
    the group of stock s is PLANTED[s]."""
    data = planted_feature_set(seed=seed, n_stocks=12)
    rng = np.random.default_rng(seed)
    days = len(data.dates)
    market, factors = rng.normal(0, 0.01, (days, 1)), rng.normal(0, 0.01, (days, 3))
    labels = market + factors[:, PLANTED] + rng.normal(0, 0.004, (days, 12))
    labels[-1] = np.nan
    return replace(data, labels=labels.astype(np.float32))


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    return all(len(set(b[a == g])) == 1 for g in set(a)) and len(set(a)) == len(set(b))


def test_the_groups_recover_planted_industries():
    data = grouped_returns()
    groups = return_groups(data, planted_split(data), 3, min_days=100)
    assert set(groups) == {1, 2, 3}
    assert same_partition(groups, PLANTED)
    assert groups[0] == 1                            # numbered by their first stock


def test_the_groups_use_no_return_of_the_validation_or_test_period():
    """Change every label realised on or after the validation start: the groups stay;
    shuffle the training labels of the stocks: they move."""
    data = grouped_returns()
    split = planted_split(data)
    before = return_groups(data, split, 3, min_days=100)
    valid = int(data.dates.searchsorted(split.valid_start))
    later = data.labels.copy()
    later[valid - 1:] = np.random.default_rng(5).normal(0, 0.05, later[valid - 1:].shape)
    np.testing.assert_array_equal(return_groups(replace(data, labels=later), split, 3,
                                                min_days=100), before)
    shuffled = data.labels.copy()
    shuffled[: valid - 1] = shuffled[: valid - 1][:, [0, 4, 8, 3, 1, 5, 6, 2, 10, 9, 7, 11]]
    assert not same_partition(return_groups(replace(data, labels=shuffled), split, 3,
                                            min_days=100), before)


def test_a_stock_without_enough_training_returns_has_no_group():
    data = grouped_returns()
    labels = data.labels.copy()
    labels[:150, 4] = np.nan                         # 49 training returns left
    groups = return_groups(replace(data, labels=labels), planted_split(data), 3, min_days=100)
    assert groups[4] == 0 and (np.delete(groups, 4) > 0).all()
    with pytest.raises(StormBtError, match="cs_groups=3: only 0 stocks"):
        return_groups(data, planted_split(data), 3, min_days=1000)


def test_group_moments_are_each_groups_mean_and_std():
    torch.manual_seed(0)
    u = torch.randn(2, 3, 6, 4)
    groups = torch.tensor([1, 0, 2, 1, 2, 2])
    out = group_moments(u, groups, 3)
    assert out.shape == (3, 2, 3, 8)
    for g in (1, 2):
        members = u[:, :, groups == g]
        torch.testing.assert_close(out[g - 1, ..., :4], members.mean(dim=2))
        torch.testing.assert_close(out[g - 1, ..., 4:],
                                   (members.var(dim=2, unbiased=False) + 1e-6).sqrt())
    torch.testing.assert_close(out[2], torch.cat([torch.zeros(2, 3, 4),
                                                  torch.full((2, 3, 4), 1e-3)], -1))


def grouped_config(n_stocks: int = 6) -> StormConfig:
    return replace(tiny, cs_groups=2).with_data(n_stocks, 8, ("open", "high", "low", "close",
                                                               "adj_close"))


def test_a_stocks_prediction_reads_its_group_and_stock_order_does_not_matter():
    config = grouped_config()
    groups = torch.tensor([1, 2, 1, 0, 2, 1])
    torch.manual_seed(0)
    model = StormModel(config, stock_groups=groups).eval()
    batch = random_batch(config)
    out = model.predict(batch)
    perm = torch.tensor([5, 3, 0, 4, 1, 2])
    permuted = StormModel(config, stock_groups=groups[perm])
    permuted.load_state_dict({**model.state_dict(), "stock_groups": groups[perm]})
    moved = replace(batch, x=batch.x[:, :, perm], y=batch.y[:, perm],
                    label_mask=batch.label_mask[:, perm], price_mean=batch.price_mean[:, :, perm],
                    price_std=batch.price_std[:, :, perm])
    torch.testing.assert_close(permuted.eval().predict(moved), out[:, perm])
    # another partition changes the predictions (a renumbering would not: no group has an
    # identity of its own)
    model.stock_groups.copy_(torch.tensor([1, 1, 2, 0, 2, 2]))
    assert (model.predict(batch) - out).abs().max() > 1e-5


def test_a_subset_batch_reads_the_groups_of_its_own_columns():
    data = planted_feature_set(n_stocks=6, n_features=8)
    config = grouped_config()
    torch.manual_seed(0)
    model = StormModel(config, stock_groups=torch.tensor([1, 2, 1, 0, 2, 1])).eval()
    ends = np.array([40, 90])
    cols = np.array([1, 2, 5])
    subset = make_batch(data, ends, config.history, cols)
    assert subset.stocks.tolist() == [1, 2, 5]
    # the same weights on a universe of those 3 stocks alone, with their groups
    other = StormModel(grouped_config(3), stock_groups=torch.tensor([2, 1, 1]))
    other.load_state_dict({**model.state_dict(), "stock_groups": torch.tensor([2, 1, 1])})
    alone = replace(subset, stocks=None, subset=False)
    torch.testing.assert_close(model.predict(subset), other.eval().predict(alone))
    with pytest.raises(StormBtError, match="without their columns"):
        model.predict(alone)


def test_the_group_tokens_go_through_the_cs_quantiser_and_decoder():
    config = grouped_config()
    torch.manual_seed(0)
    model = StormModel(config, stock_groups=torch.tensor([1, 2, 1, 0, 2, 1])).train()
    batch = random_batch(config)
    model.losses(batch)["total"].backward()
    assert model.branches["cs"].patching.embed.weight.grad.abs().sum() > 0
    factors = model.eval().factors(batch)
    b, t = batch.x.shape[:2]
    assert factors["codes_cs_groups"].shape == (b, 2, t)
    assert factors["z_cs"].shape == (b, t, config.d_model)


def test_config_keys_and_the_ablation():
    with pytest.raises(StormBtError, match="needs a CS branch"):
        replace(small, branches="ts", fusion="none", factor_tokens="both", peer_attention=False,
                cs_groups=8)
    with pytest.raises(StormBtError, match="must be >= 0"):
        replace(small, cs_groups=-1)
    data = planted_feature_set()
    split = planted_split(data)

    def payload(cls, **kw):
        return cls(preset="small", seed=1, cache_dir=None, **kw)._payload_expected(data, split)

    assert "cs_groups" not in payload(StormPredictor)["model_config"]
    assert payload(StormPredictor)["key"] == payload(StormPredictor, cs_groups=0)["key"]
    assert payload(StormPredictor)["key"] != payload(StormPredictor, cs_groups=8)["key"]
    assert "cs_groups" not in payload(StormTSPredictor)["model_config"]


def test_a_fit_keeps_the_groups_of_its_training_period(tmp_path):
    data = grouped_returns()
    split = planted_split(data)
    settings = dict(preset="tiny", seed=1, epochs=1, max_train_samples=16, cache_dir=tmp_path,
                    progress=False, cs_groups=3)
    import storm_bt.models.storm.predictor as predictor_module

    expected = return_groups(data, split, 3, min_days=100)
    original = predictor_module.return_groups
    predictor_module.return_groups = lambda d, s, g: return_groups(d, s, g, min_days=100)
    try:
        fitted = StormPredictor(**settings).fit(data, split)
        again = StormPredictor(**settings).fit(data, split)
    finally:
        predictor_module.return_groups = original
    np.testing.assert_array_equal(fitted.model.stock_groups.numpy(), expected)
    assert again.source != "trained"
    np.testing.assert_array_equal(again.model.stock_groups.numpy(), expected)
    scores = fitted.predict(data, split.test_start, data.dates[-1])
    assert scores.notna().any().all()
