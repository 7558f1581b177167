"""benchmarks/storm_gate_ablation.py: each read scored closed, and the model restored."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models"))
from planted import planted_feature_set, planted_split  # noqa: E402
from storm_gate_ablation import gate_scores  # noqa: E402

from storm_bt.models.storm.predictor import StormPredictor  # noqa: E402

torch.set_num_threads(1)


def test_the_state_read_is_scored_closed_in_two_steps_and_then_restored():
    data = planted_feature_set()
    data.characteristics = np.random.default_rng(2).standard_normal(
        data.labels.shape + (4,)).astype(np.float32)
    split = planted_split(data)
    predictor = StormPredictor(preset="tiny", seed=1, cache_dir=None, fusion="gated",
                               factor_tokens="ts", characteristics=True,
                               characteristics_read="state", epochs=1, progress=False)
    predictor.fit(data, split)
    head = predictor.model.head
    with torch.no_grad():                   # a read large enough to move the ranking
        head.linear_state.weight.normal_(0, 1.0)
        head.linear_alpha.weight.normal_(0, 1.0)
    kept = [head.linear_state.weight.detach().clone(), head.linear_alpha.weight.detach().clone()]
    scores, _ = gate_scores(predictor, data, split.valid)
    assert {"trained", "state", "characteristics"} <= set(scores)
    assert not scores["state"].equals(scores["trained"])
    assert not scores["characteristics"].equals(scores["state"])
    assert torch.equal(head.linear_state.weight, kept[0])
    assert torch.equal(head.linear_alpha.weight, kept[1])
    again, _ = gate_scores(predictor, data, split.valid)
    assert again["trained"].equals(scores["trained"])
