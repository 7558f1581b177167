"""fusion="gated" (tanh gates at 0 on the fusion's updates) and factor_tokens="ts" (the head
reads the TS tokens alone, the CS view reaches it through the fusion)."""
from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from planted import planted_feature_set, planted_split
from storm_bt.errors import StormBtError
from storm_bt.models.storm import StormModel, small
from storm_bt.models.storm.predictor import StormCSPredictor, StormPredictor, StormTSPredictor
from storm_bt.models.storm.synthetic import random_batch

torch.set_num_threads(1)

# D42's layout (no fusion, the CS day tokens as factors, the whole CS gradient into the stem)
# and the same with D43's gated fusion and TS factor tokens
DJ30 = replace(small.with_data(29, 152, ("open", "high", "low", "close", "adj_close")),
               fusion="none", factor_tokens="both", cs_stem_grad=1.0)
GATED = replace(DJ30, fusion="gated", factor_tokens="ts")


def _perturb_cs_branch(model: StormModel) -> None:
    with torch.no_grad():
        for p in model.branches["cs"].parameters():
            p.add_(torch.randn_like(p))


@pytest.mark.parametrize("mlp", [True, False])
def test_closed_gates_keep_the_cs_branch_out_of_the_prediction(mlp):
    config = replace(GATED, fusion_mlp=mlp)
    batch = random_batch(config)
    torch.manual_seed(0)
    model = StormModel(config)
    before = model.predict(batch)
    _perturb_cs_branch(model)
    torch.testing.assert_close(model.predict(batch), before, rtol=0, atol=0)
    assert ("gate_mlp_u" in model.diagnostics(batch)) == mlp


def test_open_gates_let_the_cs_branch_into_the_prediction():
    batch = random_batch(GATED)
    torch.manual_seed(0)
    model = StormModel(GATED)
    with torch.no_grad():
        model.fusion.gates.fill_(0.5)
    before = model.predict(batch)
    _perturb_cs_branch(model)
    assert (model.predict(batch) - before).abs().max() > 1e-4


def test_the_label_opens_the_gates_and_nothing_else_of_the_fusion_at_first():
    torch.manual_seed(0)
    model = StormModel(GATED)
    model.losses(random_batch(GATED))["pred"].backward()
    gate_grad = model.fusion.gates.grad
    assert gate_grad is not None and gate_grad.abs().max() > 0
    # tanh(0) = 0 multiplies every update: their weights get no gradient until a gate opens
    for name, p in model.fusion.layers.named_parameters():
        assert p.grad is None or p.grad.abs().max() == 0, name


def test_the_diagnostics_report_the_gates():
    torch.manual_seed(0)
    model = StormModel(GATED)
    with torch.no_grad():
        model.fusion.gates[0, 0] = 0.5
    diag = model.diagnostics(random_batch(GATED))
    assert diag["gate_ts_reads_cs"] == pytest.approx(float(torch.tanh(torch.tensor(0.5))))
    assert diag["gate_mlp_c"] == 0.0
    assert "gate_ts_reads_cs" not in StormModel(DJ30).diagnostics(random_batch(DJ30))


def test_an_ungated_fusion_has_no_gates():
    assert StormModel(replace(DJ30, fusion="cross")).fusion.gates is None
    assert StormModel(DJ30).fusion is None


def test_ts_factor_tokens_give_the_head_the_ts_tokens_alone():
    assert GATED.n_factors == GATED.n_ts_blocks
    assert replace(GATED, factor_tokens="both").n_factors == GATED.history + GATED.n_ts_blocks
    model = StormModel(GATED)
    out = model.factors(random_batch(GATED))
    assert out["phi"].shape == (2, GATED.n_ts_blocks, GATED.factor_dim)
    assert out["mu_z"].shape == (2, GATED.n_ts_blocks)
    # the CS branch still runs: its codes are still returned
    assert out["codes_cs"].shape == (2, GATED.history)


@pytest.mark.parametrize("settings, match", [
    ({"factor_tokens": "ts"}, "needs a fusion"),
    ({"factor_tokens": "ts", "branches": "cs"}, "needs a TS branch"),
    ({"fusion": "gates"}, "fusion"),
])
def test_inconsistent_settings_are_refused(settings, match):
    with pytest.raises(StormBtError, match=match):
        replace(DJ30, **settings)


def test_factor_tokens_key_the_dual_model_only():
    data = planted_feature_set()
    split = planted_split(data)

    def key(cls, **kw):
        return cls(preset="tiny", seed=1, cache_dir=None, **kw)._payload_expected(data,
                                                                                  split)["key"]

    assert key(StormPredictor, fusion="gated") != key(StormPredictor, fusion="gated",
                                                       factor_tokens="ts")
    assert key(StormTSPredictor) == key(StormTSPredictor, factor_tokens="ts")
    default = StormPredictor(preset="tiny", seed=1, cache_dir=None)
    assert "factor_tokens" not in default._payload_expected(data, split)["model_config"]


@pytest.mark.parametrize("preset", ["small", "paper"])
def test_the_ablations_build_from_a_fused_preset_without_its_fusion(preset):
    """storm-ts and storm-cs drop the dual model's fusion and factor tokens (D43 in small,
    the fusion in paper); storm keeps them."""
    assert StormPredictor(preset=preset, cache_dir=None).model_cfg.fusion != "none"
    for cls in (StormTSPredictor, StormCSPredictor):
        cfg = cls(preset=preset, cache_dir=None).model_cfg
        assert (cfg.fusion, cfg.factor_tokens) == ("none", "both"), cls.name
    with pytest.raises(StormBtError, match="fusion"):
        StormTSPredictor(preset=preset, cache_dir=None, fusion="gated")


def test_the_ablations_keep_their_keys_under_d43():
    """storm-ts and storm-cs train exactly what they trained under D42's small: their
    checkpoint keys do not change."""
    data = planted_feature_set()
    split = planted_split(data)
    d42 = {"fusion": "none", "factor_tokens": "both", "cs_stem_grad": 1.0}
    for cls in (StormTSPredictor, StormCSPredictor):
        now = cls(preset="small", seed=1, cache_dir=None)._payload_expected(data, split)
        before = cls(preset="small", seed=1, cache_dir=None,
                     **d42)._payload_expected(data, split)
        assert now["key"] == before["key"], cls.name


# ----------------------------------------------------------- fusion_mlp=False (the cross reads)
NO_MLP = replace(GATED, fusion_mlp=False)


def test_a_fusion_without_mlps_has_the_two_cross_reads_and_their_gates():
    fusion = StormModel(NO_MLP).fusion
    assert fusion.updates == ("ts_reads_cs", "cs_reads_ts")
    assert fusion.gates.shape == (NO_MLP.fusion_depth, 2)
    assert all(set(layer) == {"ts_reads_cs", "cs_reads_ts"} for layer in fusion.layers)
    assert set(fusion.gate_values()) == {"gate_ts_reads_cs", "gate_cs_reads_ts"}
    assert sum(p.numel() for p in StormModel(GATED).fusion.parameters()) \
        > sum(p.numel() for p in fusion.parameters())


def test_a_fusion_without_mlps_is_the_identity_with_closed_gates_and_reads_cs_when_open():
    torch.manual_seed(0)
    fusion = StormModel(NO_MLP).fusion
    c, u = torch.randn(2, 8, NO_MLP.d_model), torch.randn(2 * 3, 4, NO_MLP.d_model)
    c_out, u_out = fusion(c, u)
    torch.testing.assert_close((c_out, u_out), (c, u), rtol=0, atol=0)
    with torch.no_grad():
        fusion.gates.fill_(0.5)
    _, u_open = fusion(c, u)
    _, u_other = fusion(c + torch.randn_like(c), u)
    assert (u_open - u_other).abs().max() > 1e-4


def test_fusion_mlp_keys_the_dual_model_only_when_false():
    data = planted_feature_set()
    split = planted_split(data)

    def payload(cls, **kw):
        return cls(preset="small", seed=1, cache_dir=None, **kw)._payload_expected(data, split)

    assert "fusion_mlp" not in payload(StormPredictor)["model_config"]
    assert payload(StormPredictor)["key"] == payload(StormPredictor, fusion_mlp=True)["key"]
    assert payload(StormPredictor)["key"] != payload(StormPredictor, fusion_mlp=False)["key"]
    for cls in (StormTSPredictor, StormCSPredictor):
        assert payload(cls)["key"] == payload(cls, fusion_mlp=False)["key"], cls.name
