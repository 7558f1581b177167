"""`cs_factor_pool` (CS day tokens averaged into fewer factors) and the checkpoint keys of
settings added later (`model_keyed_when_set`, recon_cs_scale with one branch)."""
from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from planted import planted_feature_set, planted_split
from storm_bt.errors import StormBtError
from storm_bt.models.neural.checkpoint import checkpoint_key
from storm_bt.models.storm import StormModel, small
from storm_bt.models.storm.predictor import StormCSPredictor, StormPredictor, StormTSPredictor
from storm_bt.models.storm.synthetic import random_batch

torch.set_num_threads(1)

# the CS day tokens as factors (D42's layout; D43's small has the TS tokens alone)
DJ30 = replace(small.with_data(29, 152, ("open", "high", "low", "close", "adj_close")),
               factor_tokens="both")


def test_pooled_cs_factors_are_block_means_of_the_day_tokens():
    cfg = replace(DJ30, cs_factor_pool=16)
    assert cfg.n_factors == 64 // 16 + 64 // 16                  # 4 CS + 4 TS market tokens
    torch.manual_seed(0)
    model = StormModel(cfg)
    batch = random_batch(cfg)
    f = model.factors(batch)
    assert f["phi"].shape == (2, 8, 128) and f["mu_z"].shape == (2, 8)
    day_tokens = torch.cat([f["z_cs"], f["q_cs"]], dim=-1)      # (2, 64, 128)
    expected = day_tokens.reshape(2, 4, 16, 128).mean(dim=2)
    torch.testing.assert_close(f["phi"][:, :4], expected)
    terms = model.losses(batch)
    assert all(torch.isfinite(v) for v in terms.values())
    assert model.predict(batch).shape == (2, 29)


def test_a_pool_that_does_not_divide_the_history_is_refused():
    with pytest.raises(StormBtError, match="cs_factor_pool=5"):
        replace(DJ30, cs_factor_pool=5)
    with pytest.raises(StormBtError, match="cs_factor_pool"):
        replace(DJ30, cs_factor_pool=0)


def test_the_pool_enters_the_checkpoint_key_only_when_set():
    data = planted_feature_set()
    split = planted_split(data)
    plain = StormPredictor(preset="tiny", seed=1, cache_dir=None)
    expected = plain._payload_expected(data, split)
    # the key the code had before the setting existed: every other model setting
    # (the settings added later, this one among them, left out)
    before = {k: v for k, v in plain.model_config.items()
              if k not in StormPredictor.model_keyed_when_set}
    assert "cs_factor_pool" in plain.model_config
    assert "cs_factor_pool" not in expected["model_config"]
    assert expected["key"] == checkpoint_key(
        "storm", {**before, "history": plain.history}, plain.train_config,
        expected["data"], StormPredictor.weights_version)
    pooled = StormPredictor(preset="tiny", seed=1, cache_dir=None, cs_factor_pool=4)
    other = pooled._payload_expected(data, split)
    assert other["model_config"]["cs_factor_pool"] == 4 and other["key"] != expected["key"]


def test_an_explicit_checkpoint_without_the_setting_still_matches(tmp_path):
    data = planted_feature_set()
    split = planted_split(data)
    path = tmp_path / "storm.pt"
    StormPredictor(preset="tiny", seed=1, epochs=1, checkpoint=path).fit(data, split)
    payload = torch.load(path, weights_only=True)
    assert "cs_factor_pool" not in payload["model_config"]
    reused = StormPredictor(preset="tiny", seed=1, epochs=1, checkpoint=path).fit(data, split)
    assert reused.source == str(path)
    with pytest.raises(StormBtError, match="cs_factor_pool"):
        StormPredictor(preset="tiny", seed=1, epochs=1, checkpoint=path,
                       cs_factor_pool=4).fit(data, split)


@pytest.mark.parametrize("setting, value, default, keyed", [
    # weighs the CS reconstruction beside a TS one: the dual model only
    ("recon_cs_scale", 0.1, 1.0, {StormPredictor}),
    # the CS gradient into the stem the branches share: the dual model only
    ("cs_stem_grad", 0.0, 1.0, {StormPredictor}),
    # what the CS token summarises: every model with a CS branch
    ("cs_context", "universe", "batch", {StormPredictor, StormCSPredictor}),
])
def test_a_cs_setting_keys_only_the_models_whose_training_it_changes(setting, value, default,
                                                                      keyed):
    data = planted_feature_set()
    split = planted_split(data)

    def key(cls, v):
        return cls(preset="tiny", seed=1, cache_dir=None,
                   **{setting: v})._payload_expected(data, split)["key"]

    for cls in (StormPredictor, StormTSPredictor, StormCSPredictor):
        assert (key(cls, value) != key(cls, default)) == (cls in keyed), cls.name
