"""`cs_context="universe"`: the CS day token summarises every stock of the universe, not
the stocks a training step drew (exact moments of the linear stem from the per-date
feature mean and covariance the batch carries)."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from planted import planted_feature_set, planted_split, uneven_feature_set
from storm_bt.errors import StormBtError
from storm_bt.features.dataset import FeatureSet
from storm_bt.models.neural.batch import make_batch
from storm_bt.models.neural.training import TrainConfig, train_model
from storm_bt.models.storm import StormModel, tiny
from storm_bt.models.storm.predictor import StormPredictor

torch.set_num_threads(1)

PRICES = ("open", "high", "low", "close", "adj_close")


def _model(data: FeatureSet, **settings) -> StormModel:
    torch.manual_seed(0)
    cfg = replace(tiny, cs_context="universe", **settings).with_data(
        len(data.tickers), data.n_features, PRICES)
    return StormModel(cfg)


def test_the_cross_section_is_each_dates_mean_and_covariance_over_every_stock():
    data = uneven_feature_set()
    mean, cov = data.cross_section
    t = 77
    x = data.features[t].astype(np.float64)
    np.testing.assert_allclose(mean[t], x.mean(axis=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(cov[t], np.cov(x, rowvar=False, bias=True), rtol=1e-4,
                               atol=1e-5)


def test_the_cross_section_up_to_t_ignores_every_later_row():
    data = uneven_feature_set()
    before = [a.copy() for a in data.cross_section]
    t = 150
    later = uneven_feature_set()
    later.features[t + 1:] = np.random.default_rng(9).normal(
        size=later.features[t + 1:].shape).astype(np.float32) * 10
    after = later.cross_section
    for a, b in zip(before, after):
        np.testing.assert_array_equal(a[: t + 1], b[: t + 1])
        assert not np.allclose(a[t + 1:], b[t + 1:])


@pytest.mark.parametrize("stem", [16, 0])
def test_with_every_stock_drawn_the_universe_path_equals_the_batch_path(stem):
    data = uneven_feature_set()
    model = _model(data, cs_stem=stem)
    ends = np.array([70, 140, 190])
    everyone = np.arange(len(data.tickers))
    plain = make_batch(data, ends, tiny.history)
    universe = make_batch(data, ends, tiny.history, everyone, universe=True)
    assert not plain.has_universe and universe.has_universe
    assert universe.universe_cov.shape == (len(np.unique(
        ends[:, None] - tiny.history + 1 + np.arange(tiny.history))), 8, 8)
    torch.testing.assert_close(model.factors(universe)["z_cs"], model.factors(plain)["z_cs"],
                               rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(model.predict(universe), model.predict(plain), rtol=1e-4,
                               atol=1e-4)
    model.eval()                      # no codebook update between the two calls
    a, b = model.losses(universe), model.losses(plain)
    for key in ("recon", "commit_cs", "total"):
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5)


def test_the_day_token_of_a_subset_is_the_universes():
    data = uneven_feature_set()
    model = _model(data)
    ends = np.array([90, 180])
    whole = model.factors(make_batch(data, ends, tiny.history))["z_cs"]
    subset = np.array([0, 3, 4, 9])
    universe = model.factors(make_batch(data, ends, tiny.history, subset, universe=True))["z_cs"]
    torch.testing.assert_close(universe, whole, rtol=1e-4, atol=1e-4)
    # the subset's own moments differ (read as if its stocks were the universe) ...
    alone = replace(make_batch(data, ends, tiny.history, subset), subset=False)
    assert (model.factors(alone)["z_cs"] - whole).abs().max() > 1e-2
    # ... so a subset batch without the universe's cross-section is refused, not misread
    with pytest.raises(StormBtError, match="without the universe's cross-section"):
        model.factors(make_batch(data, ends, tiny.history, subset))
    with pytest.raises(StormBtError, match="without the universe's cross-section"):
        model.losses(make_batch(data, ends, tiny.history, subset))


def test_the_stem_learns_through_the_universe_moments_and_cs_stem_grad_scales_it():
    data = uneven_feature_set()
    batch = make_batch(data, np.array([100, 200]), tiny.history, np.array([1, 2, 5, 7]),
                       universe=True)

    def stem_grad(share):
        model = _model(data, cs_stem_grad=share)
        model.zero_grad()
        model.losses(batch)["commit_cs"].backward()     # reaches the stem via CS only
        grad = model.stem.weight.grad
        return torch.tensor(0.0) if grad is None else grad.norm()

    full = stem_grad(1.0)
    assert float(full) > 0
    torch.testing.assert_close(stem_grad(0.0), torch.tensor(0.0))


def test_training_on_subsets_uses_the_universe_and_is_reproducible():
    data = uneven_feature_set()
    split = planted_split(data)
    cfg = TrainConfig(epochs=2, lr=1e-3, batch_size=16, stocks_per_step=4, valid_stocks=6,
                      seed=1, progress=False)

    def fit():
        model = _model(data)
        seen = []
        losses, predict = model.losses, model.predict
        model.losses = lambda b: seen.append(("train", b.has_universe, b.x.shape[2])) or losses(b)
        model.predict = lambda b: seen.append(("valid", b.has_universe, b.x.shape[2])) \
            or predict(b)
        return train_model(model, data, split, tiny.history, cfg), seen

    (r1, seen), (r2, _) = fit(), fit()
    assert np.isfinite(r1.best_valid_rank_ic)
    assert [e.valid_rank_ic for e in r1.epochs] == [e.valid_rank_ic for e in r2.epochs]
    # every training step (4 stocks) and every validation batch (6 stocks) read the universe
    assert {s for s in seen if s[0] == "train"} == {("train", True, 4)}
    assert {s for s in seen if s[0] == "valid"} == {("valid", True, 6)}


def test_cs_context_is_left_out_of_the_default_key_and_ignored_without_a_cs_branch():
    # which models the setting keys: test_storm_factor_pool
    data = planted_feature_set()
    split = planted_split(data)
    plain = StormPredictor(preset="tiny", seed=1, cache_dir=None)
    assert "cs_context" not in plain._payload_expected(data, split)["model_config"]
    assert not StormModel(replace(tiny, branches="ts", cs_context="universe")).reads_universe
