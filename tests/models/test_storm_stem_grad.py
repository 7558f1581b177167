"""`cs_stem_grad`: the share of the CS branch's gradient that reaches the shared stem."""
from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from planted import planted_feature_set, planted_split
from storm_bt.errors import StormBtError
from storm_bt.models.storm import StormModel, small
from storm_bt.models.storm.predictor import StormPredictor
from storm_bt.models.storm.synthetic import random_batch

torch.set_num_threads(1)

# the whole CS gradient into the stem (D42; D43's small stops it)
DJ30 = replace(small.with_data(29, 152, ("open", "high", "low", "close", "adj_close")),
               cs_stem_grad=1.0)


def _stem_grad(cfg, term: str) -> tuple[torch.Tensor, dict]:
    torch.manual_seed(0)
    model = StormModel(cfg)
    terms = model.losses(random_batch(cfg))
    model.zero_grad()
    terms[term].backward()
    grads = [p.grad for p in model.stem.parameters()]
    norm = torch.sqrt(sum((g.pow(2).sum() for g in grads if g is not None), torch.tensor(0.0)))
    return norm, {k: float(v.detach()) for k, v in terms.items()}


@pytest.mark.parametrize("share", [0.0, 0.5])
def test_the_forward_pass_is_unchanged_and_the_cs_gradient_is_scaled(share):
    # commit_cs reaches the stem only through the CS branch
    full, terms_full = _stem_grad(DJ30, "commit_cs")
    scaled, terms_scaled = _stem_grad(replace(DJ30, cs_stem_grad=share), "commit_cs")
    assert terms_scaled == terms_full
    assert float(full) > 0
    torch.testing.assert_close(scaled, share * full)
    # a TS-only term keeps all of its stem gradient
    ts_full, _ = _stem_grad(DJ30, "commit_ts")
    ts_scaled, _ = _stem_grad(replace(DJ30, cs_stem_grad=share), "commit_ts")
    assert float(ts_full) > 0
    torch.testing.assert_close(ts_scaled, ts_full)


def test_an_out_of_range_share_is_refused():
    for bad in (-0.1, 1.5):
        with pytest.raises(StormBtError, match="cs_stem_grad"):
            replace(DJ30, cs_stem_grad=bad)


def test_the_share_is_left_out_of_the_default_key():
    data = planted_feature_set()
    split = planted_split(data)
    # the default key is the key before the setting existed: test_storm_factor_pool checks
    # that for every setting in model_keyed_when_set, and which models the share keys
    assert "cs_stem_grad" in StormPredictor.model_keyed_when_set
    plain = StormPredictor(preset="tiny", seed=1, cache_dir=None)
    assert "cs_stem_grad" not in plain._payload_expected(data, split)["model_config"]
