"""Parameter averaging (`weight_ema`): the maths of the average, the swap, and what the
training loop selects and restores with it."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from planted import planted_feature_set, planted_split
from storm_bt.errors import StormBtError
from storm_bt.models.baselines.lstm import LSTMPredictor
from storm_bt.models.neural.averaging import ParameterAverage
from storm_bt.models.neural.checkpoint import checkpoint_key
from storm_bt.models.neural.training import TrainConfig, train_model

torch.set_num_threads(1)


def test_the_average_is_the_bias_corrected_exponential_mean_of_the_iterates():
    layer = torch.nn.Linear(2, 1)
    average = ParameterAverage(layer, decay=0.9)
    iterates = []
    rng = np.random.default_rng(0)
    for _ in range(7):
        with torch.no_grad():
            layer.weight.copy_(torch.tensor(rng.normal(size=(1, 2)), dtype=torch.float32))
        iterates.append(layer.weight.detach().clone())
        average.update()
    k = len(iterates)
    weights = np.array([0.9 ** (k - 1 - j) * 0.1 for j in range(k)]) / (1 - 0.9 ** k)
    expected = sum(float(w) * it for w, it in zip(weights, iterates))
    assert weights.sum() == pytest.approx(1.0)
    torch.testing.assert_close(average.averaged()[0], expected)


def test_a_constant_parameter_averages_to_itself_from_the_first_step():
    layer = torch.nn.Linear(3, 2)
    average = ParameterAverage(layer, decay=0.999)
    average.update()
    for avg, p in zip(average.averaged(), layer.parameters()):
        torch.testing.assert_close(avg, p.detach())   # no pull towards zero


def test_applied_swaps_the_average_in_and_the_live_weights_back_even_on_error():
    layer = torch.nn.Linear(2, 1)
    average = ParameterAverage(layer, decay=0.5)
    average.update()
    first = layer.weight.detach().clone()
    with torch.no_grad():
        layer.weight.add_(1.0)
    average.update()
    live = layer.weight.detach().clone()
    with average.applied():
        torch.testing.assert_close(layer.weight.detach(), (0.25 * first + 0.5 * live) / 0.75)
    torch.testing.assert_close(layer.weight.detach(), live)
    with pytest.raises(RuntimeError, match="inside"):
        with average.applied():
            raise RuntimeError("inside")
    torch.testing.assert_close(layer.weight.detach(), live)


def test_bad_decays_are_refused():
    for decay in (1.0, -0.1, 1.5):
        with pytest.raises(StormBtError, match="weight_ema"):
            TrainConfig(weight_ema=decay)
    with pytest.raises(StormBtError, match="average"):
        ParameterAverage(torch.nn.Linear(1, 1), 0.9).averaged()   # nothing averaged yet


class _Recording(torch.nn.Module):
    """Loss w (gradient 1): AdamW walks w down by about lr a step. Records w at every
    losses() call, so calls[k] is the parameter after k optimiser steps."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor(0.3))
        self.calls: list[float] = []

    def losses(self, batch):
        self.calls.append(float(self.w.detach()))
        return {"total": self.w * 1.0}

    def predict(self, batch):
        return self.w * batch.x[:, -1, :, 5]


def test_training_selects_and_restores_the_averaged_weights_and_steps_the_live_ones():
    data = planted_feature_set()
    split = planted_split(data)
    lr, decay = 1e-3, 0.8
    cfg = TrainConfig(epochs=2, batch_size=16, lr=lr, warmup_frac=0.0, weight_decay=0.0,
                      patience=None, select_smooth=1, num_threads=1, progress=False,
                      weight_ema=decay)
    model = _Recording()
    result = train_model(model, data, split, history=8, cfg=cfg)
    n = len(data.sample_ends(*split.train, 8)) // 16          # steps per epoch
    w = np.array(model.calls)                                  # w[k]: after k steps
    assert len(w) == 2 * n and (w > 0).all()
    # the second epoch went on from the live weights of the first, not from their average:
    # one AdamW step of the scheduled size, lr (K - n) / K = lr / 2 for K = 2n steps
    assert w[n + 1] - w[n] == pytest.approx(-lr / 2, rel=1e-3)
    # both epochs score the same RankIC (w > 0), so selection keeps epoch 1: its average
    assert result.best_epoch == 1
    weights = decay ** np.arange(n - 1, -1, -1) * (1 - decay) / (1 - decay ** n)
    expected = float(np.dot(weights, w[1: n + 1]))
    assert float(model.w.detach()) == pytest.approx(expected, rel=1e-5)
    assert abs(expected - w[n]) > 1e-4                        # the average is not the last


def test_weight_ema_enters_the_checkpoint_key_only_when_set():
    plain = TrainConfig()
    assert "weight_ema" not in plain.identity()
    data = {"fingerprint": "x"}
    assert checkpoint_key("lstm", {}, plain, data) != checkpoint_key(
        "lstm", {}, TrainConfig(weight_ema=0.99), data)
    assert TrainConfig(weight_ema=0.99).identity()["weight_ema"] == 0.99


def test_a_predictor_takes_weight_ema_as_a_training_setting():
    predictor = LSTMPredictor(preset="tiny", weight_ema=0.995, cache_dir=None)
    assert predictor.train_config.weight_ema == 0.995
    with pytest.raises(StormBtError, match="weight_ema"):
        LSTMPredictor(preset="tiny", weight_ema=1, cache_dir=None)   # an int, not a decay
