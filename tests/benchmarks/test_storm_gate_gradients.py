"""benchmarks/storm_gate_gradients.py: per-step gate gradients and their t-statistics."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models"))
from planted import planted_feature_set, planted_split  # noqa: E402
from storm_gate_gradients import gate_gradients, t_statistics  # noqa: E402

from storm_bt.models.storm.predictor import StormPredictor  # noqa: E402

torch.set_num_threads(1)


def test_t_statistics_are_mean_over_standard_error_and_zero_where_nothing_flows():
    grads = np.array([[1.0, 0.0, 2.0], [3.0, 0.0, -2.0], [2.0, 0.0, 0.0]])
    t = t_statistics(grads)
    assert t[0] == pytest.approx(2.0 / (1.0 / np.sqrt(3)))      # mean 2, sd 1
    assert t[1] == 0.0                                          # never reached
    assert t[2] == pytest.approx(0.0)                           # mean 0, sd 2


def test_the_label_terms_never_reach_the_cs_tokens_gates_when_the_head_reads_ts_alone():
    """With factor_tokens="ts" the CS tokens after the fusion feed only the CS branch's own
    quantiser and decoder: the label terms' gradient on cs_reads_ts and mlp_c is exactly 0,
    while the total loss reaches every gate."""
    data = planted_feature_set()
    predictor = StormPredictor(preset="tiny", seed=1, cache_dir=None, fusion="gated",
                               factor_tokens="ts")
    model = predictor.build(data)
    before = model.fusion.gates.detach().clone()
    total, label = gate_gradients(model, data, planted_split(data), predictor.history,
                                  predictor.train_config, steps=3, seed=1)
    updates = list(model.fusion.updates)
    assert total.shape == label.shape == (3, len(updates))
    assert (np.abs(total) > 0).all()
    cs_side = [updates.index("cs_reads_ts"), updates.index("mlp_c")]
    assert (label[:, cs_side] == 0).all()
    assert (np.abs(label[:, updates.index("ts_reads_cs")]) > 0).all()
    assert not torch.equal(model.fusion.gates.detach(), before)    # it trains as it goes
