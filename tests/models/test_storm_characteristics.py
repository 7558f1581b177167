"""characteristics: each stock's embedding holds its cross-sectional characteristic ranks."""
from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from planted import planted_feature_set, planted_split
from storm_bt.errors import StormBtError
from storm_bt.features.characteristics import CHARACTERISTIC_NAMES
from storm_bt.models.storm import StormModel, tiny
from storm_bt.models.storm.predictor import StormCSPredictor, StormPredictor, StormTSPredictor
from storm_bt.models.storm.synthetic import random_batch

torch.set_num_threads(1)

TINY = tiny.with_data(6, 12, ("open", "high", "low", "close", "adj_close"))


def _predict(config, batch):
    torch.manual_seed(0)
    model = StormModel(config).eval()
    return model.predict(batch)


@pytest.mark.parametrize("branches", ["both", "ts", "cs"])
def test_a_stocks_characteristics_move_its_prediction_alone(branches):
    """The prior's factors do not read the stock embeddings, so changing stock 2's
    characteristics changes stock 2's predicted return and no other stock's; without
    `characteristics` the prediction ignores them."""
    for on in (True, False):
        config = replace(TINY, branches=branches, characteristics=on)
        batch = random_batch(config, n=3)
        chars = batch.characteristics.clone()
        chars[:, 2] += torch.tensor([2.0, -1.0, 0.5, 1.5])
        before, after = _predict(config, batch), _predict(config, replace(batch,
                                                                          characteristics=chars))
        others = [0, 1, 3, 4, 5]
        torch.testing.assert_close(after[:, others], before[:, others])
        assert (after[:, 2] - before[:, 2]).abs().min() > 0 if on \
            else torch.equal(after, before)
    assert replace(TINY, characteristics=True).stock_dim == \
        TINY.stock_dim + len(CHARACTERISTIC_NAMES)


def test_a_batch_without_characteristics_is_refused_with_the_fix():
    config = replace(TINY, characteristics=True)
    batch = replace(random_batch(config), characteristics=None)
    with pytest.raises(StormBtError, match="characteristics=True needs the batch's stock"):
        StormModel(config).predict(batch)


def test_characteristics_are_keyed_only_when_true_and_no_ablation_takes_them_by_default():
    data = planted_feature_set()
    split = planted_split(data)

    def payload(cls, **kw):
        return cls(preset="small", seed=1, cache_dir=None, **kw)._payload_expected(data, split)

    for cls in (StormPredictor, StormTSPredictor, StormCSPredictor):
        assert "characteristics" not in payload(cls)["model_config"], cls.name
        assert payload(cls)["key"] == payload(cls, characteristics=False)["key"], cls.name
        assert payload(cls)["key"] != payload(cls, characteristics=True)["key"], cls.name


@pytest.mark.parametrize("branches", ["both", "ts", "cs"])
def test_the_linear_read_adds_w_dot_c_to_the_expected_return_and_starts_at_zero(branches):
    """characteristics_read="linear": mu_y = (the model without characteristics) + w'c_s,
    w = 0 at first, so the untrained model predicts as the one without them; a change
    Delta c of stock 2 moves stock 2's prediction by exactly w'Delta c."""
    base = replace(TINY, branches=branches)
    config = replace(base, characteristics=True, characteristics_read="linear")
    assert config.stock_dim == base.stock_dim and config.linear_characteristics == 4
    batch = random_batch(config, n=3)
    torch.testing.assert_close(_predict(config, batch), _predict(base, batch))
    torch.manual_seed(0)
    model = StormModel(config).eval()
    w = torch.tensor([0.5, -1.0, 0.25, 2.0])
    with torch.no_grad():
        model.head.linear_alpha.weight.copy_(w[None])
    delta = torch.tensor([2.0, -1.0, 0.5, 1.5])
    chars = batch.characteristics.clone()
    chars[:, 2] += delta
    moved = model.predict(replace(batch, characteristics=chars)) - model.predict(batch)
    expected = torch.zeros_like(moved)
    expected[:, 2] = float(w @ delta)
    torch.testing.assert_close(moved, expected, rtol=1e-5, atol=1e-5)


def test_the_read_is_keyed_only_when_linear():
    data = planted_feature_set()
    split = planted_split(data)

    def payload(**kw):
        return StormPredictor(preset="small", seed=1, cache_dir=None,
                              **kw)._payload_expected(data, split)

    on = payload(characteristics=True)
    assert "characteristics_read" not in on["model_config"]
    assert on["key"] == payload(characteristics=True, characteristics_read="embedding")["key"]
    assert on["key"] != payload(characteristics=True, characteristics_read="linear")["key"]
    with pytest.raises(StormBtError, match="characteristics_read"):
        replace(TINY, characteristics_read="quadratic")


@pytest.mark.parametrize("branches", ["both", "cs"])
def test_the_state_read_weighs_c_by_the_day_token_and_starts_at_zero(branches):
    """characteristics_read="state": mu_y = (the model without characteristics)
    + (w + V zbar_b)'c_s, zbar_b the CS token of window b's last day; w = V = 0 at first, so
    the untrained model predicts as the one without them. A change Delta c of stock 2 moves
    stock 2's prediction by exactly (w + V zbar_b)'Delta c, a different amount in each
    window."""
    base = replace(TINY, branches=branches)
    config = replace(base, characteristics=True, characteristics_read="state")
    assert config.stock_dim == base.stock_dim and config.state_read_dim == config.d_model
    batch = random_batch(config, n=3)
    torch.testing.assert_close(_predict(config, batch), _predict(base, batch))
    torch.manual_seed(0)
    model = StormModel(config).eval()
    w = torch.tensor([0.5, -1.0, 0.25, 2.0])
    v = torch.randn(4, config.d_model)
    with torch.no_grad():
        model.head.linear_alpha.weight.copy_(w[None])
        model.head.linear_state.weight.copy_(v)
        zbar = model._encode(batch).z["cs"][:, -1]                     # (B, d)
    delta = torch.tensor([2.0, -1.0, 0.5, 1.5])
    chars = batch.characteristics.clone()
    chars[:, 2] += delta
    moved = model.predict(replace(batch, characteristics=chars)) - model.predict(batch)
    expected = torch.zeros_like(moved)
    expected[:, 2] = (w + zbar @ v.T) @ delta
    torch.testing.assert_close(moved, expected, rtol=1e-4, atol=1e-5)
    assert expected[:, 2].unique().numel() == 3


def test_the_state_read_learns_from_the_label_and_needs_the_cs_branch():
    """At V = 0 the return loss still reaches V (its gradient is the label's residual times
    c_s zbar'), and through V the CS encoder; storm-ts has no day token to read."""
    config = replace(TINY, characteristics=True, characteristics_read="state")
    torch.manual_seed(0)
    model = StormModel(config).train()
    model.losses(random_batch(config, n=4))["total"].backward()
    assert model.head.linear_state.weight.grad.abs().sum() > 0
    with pytest.raises(StormBtError, match="reads the CS branch's day token"):
        replace(TINY, branches="ts", characteristics=True, characteristics_read="state")


def test_the_state_read_is_keyed_apart_from_the_linear_one():
    data = planted_feature_set()
    split = planted_split(data)

    def key(**kw):
        return StormPredictor(preset="small", seed=1, cache_dir=None,
                              **kw)._payload_expected(data, split)["key"]

    assert key(characteristics=True, characteristics_read="state") != \
        key(characteristics=True, characteristics_read="linear")
