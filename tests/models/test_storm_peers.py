"""peer_attention: each stock's embedding in the factor head reads the stocks of its sample."""
from __future__ import annotations

from dataclasses import replace

import torch

from planted import planted_feature_set, planted_split
from storm_bt.models.storm import StormModel, small
from storm_bt.models.storm.factor_head import StocksReadPeers
from storm_bt.models.storm.predictor import StormCSPredictor, StormPredictor, StormTSPredictor
from storm_bt.models.storm.synthetic import random_batch

torch.set_num_threads(1)

DJ30 = small.with_data(29, 152, ("open", "high", "low", "close", "adj_close"))
D43 = replace(DJ30, peer_attention=False)


def test_small_reads_peers():
    assert small.peer_attention


def test_the_peer_read_is_attention_over_the_stocks_of_its_own_sample():
    torch.manual_seed(0)
    read = StocksReadPeers(hidden=8, heads=2)
    torch.nn.init.normal_(read.attention.out_proj.weight)
    h = torch.randn(3, 5, 8)
    out = read(h)
    assert out.shape == h.shape
    # sample 1's update does not move when sample 0's stocks change
    h2 = h.clone()
    h2[0] = torch.randn(5, 8)
    torch.testing.assert_close(read(h2)[1:], out[1:])
    # a stock's update moves when another stock of its sample changes
    h3 = h.clone()
    h3[1, 4] = torch.randn(8)
    assert (read(h3)[1, 0] - out[1, 0]).abs().max() > 1e-4
    # it is the same set function in any order of the stocks
    perm = torch.tensor([3, 0, 4, 1, 2])
    torch.testing.assert_close(read(h[:, perm]), out[:, perm])


def test_the_untrained_model_predicts_as_without_the_peer_read():
    """The read is built last and its output projection starts at 0: same seed, same
    weights elsewhere, same predictions."""
    batch = random_batch(DJ30)

    def build(config):
        torch.manual_seed(3)
        return StormModel(config).eval()

    base, peers = build(D43), build(replace(D43, peer_attention=True))
    torch.testing.assert_close(peers.predict(batch), base.predict(batch), rtol=0, atol=0)
    extra = {k for k in peers.state_dict() if k not in base.state_dict()}
    assert extra and all(k.startswith("head.stocks_read_peers.") for k in extra)
    for key, value in base.state_dict().items():
        torch.testing.assert_close(peers.state_dict()[key], value, rtol=0, atol=0)


def test_after_a_step_a_stocks_prediction_depends_on_its_peers_through_the_read():
    config = DJ30
    torch.manual_seed(0)
    model = StormModel(config).train()
    batch = random_batch(config)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    model.losses(batch)["total"].backward()
    out_proj = model.head.stocks_read_peers.attention.out_proj
    assert out_proj.weight.grad.abs().sum() > 0
    opt.step()
    assert out_proj.weight.abs().sum() > 0
    with_read = model.predict(batch)
    torch.nn.init.zeros_(out_proj.weight)
    torch.nn.init.zeros_(out_proj.bias)
    assert (model.predict(batch) - with_read).abs().max() > 1e-6


def test_keys_and_the_ablations():
    """storm and storm-cs read peers in `small`; storm-ts, without the cross-section, does
    not unless told, and keeps the key it had before the peer read existed."""
    data = planted_feature_set()
    split = planted_split(data)

    def payload(cls, **kw):
        return cls(preset="small", seed=1, cache_dir=None, **kw)._payload_expected(data, split)

    assert payload(StormPredictor)["model_config"]["peer_attention"] is True
    assert payload(StormPredictor)["key"] == payload(StormPredictor, peer_attention=True)["key"]
    assert payload(StormPredictor)["key"] != payload(StormPredictor, peer_attention=False)["key"]
    assert payload(StormCSPredictor)["key"] == payload(StormCSPredictor,
                                                       peer_attention=True)["key"]
    ts = payload(StormTSPredictor)
    assert "peer_attention" not in ts["model_config"]
    assert ts["key"] == payload(StormTSPredictor, peer_attention=False)["key"]
    assert ts["key"] != payload(StormTSPredictor, peer_attention=True)["key"]
    assert not StormTSPredictor(preset="small", seed=1).model_config["peer_attention"]
