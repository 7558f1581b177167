"""Neural baselines (LSTM, temporal transformer, FactorVAE): shapes, per-stock structure,
FactorVAE's posterior/prior maths, and one fit each through the shared loop."""
from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from storm_bt.errors import StormBtError
from storm_bt.models.neural.batch import make_batch
from storm_bt.models.baselines.factorvae import FactorVAE, FactorVAEConfig, FactorVAEPredictor, gaussian_kl
from storm_bt.models.baselines.lstm import LSTMConfig, LSTMModel, LSTMPredictor
from storm_bt.models.neural.predictor import DataDims
from storm_bt.models.registry import model_spec
from storm_bt.models.baselines.transformer import TemporalTransformer, TransformerConfig, TransformerPredictor
from planted import planted_feature_set, planted_split

torch.set_num_threads(1)

DIMS = DataDims(n_stocks=8, n_features=6, n_price=5)
MODELS = {
    "lstm": lambda: LSTMModel(LSTMConfig(history=8, hidden=12, layers=2), DIMS),
    "transformer": lambda: TemporalTransformer(
        TransformerConfig(history=8, d_model=16, heads=2, layers=1, dropout=0.0), DIMS),
    "factorvae": lambda: FactorVAE(
        FactorVAEConfig(history=8, hidden=12, n_factors=3, n_portfolios=5), DIMS),
}


@pytest.fixture(scope="module")
def data():
    return planted_feature_set()


@pytest.fixture(scope="module")
def batch(data):
    return make_batch(data, np.arange(20, 25), history=8)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_forward_shapes_and_a_finite_differentiable_loss(name, batch):
    torch.manual_seed(0)
    model = MODELS[name]()
    assert model.predict(batch).shape == (5, 8)
    terms = model.losses(batch)
    assert terms["total"].shape == () and torch.isfinite(terms["total"])
    terms["total"].backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("name", ["lstm", "transformer"])
def test_a_stock_score_reads_only_that_stocks_window(name, batch):
    torch.manual_seed(0)
    model = MODELS[name]().eval()
    before = model.predict(batch)
    batch.x = batch.x.clone()
    batch.x[:, :, 3] += 1.0
    after = model.predict(batch)
    others = [s for s in range(8) if s != 3]
    torch.testing.assert_close(after[:, others], before[:, others])
    assert not torch.allclose(after[:, 3], before[:, 3])


def test_factorvae_posterior_ignores_stocks_without_a_label(batch):
    torch.manual_seed(0)
    model = MODELS["factorvae"]()
    e = model.extract(batch.x)
    mask = batch.label_mask.clone()
    mask[:, 2] = False
    y = batch.y.clone()
    mu, sigma = model.posterior(e, y, mask)
    y[:, 2] = 123.0
    mu2, sigma2 = model.posterior(e, y, mask)
    torch.testing.assert_close(mu, mu2)
    torch.testing.assert_close(sigma, sigma2)


def test_factorvae_prediction_is_the_prior_mean_decoded(batch):
    torch.manual_seed(0)
    model = MODELS["factorvae"]().eval()
    e = model.extract(batch.x)
    mu_p, _ = model.prior(e, batch.label_mask)
    hidden = model.alpha_hidden(e)
    alpha = model.alpha_mu(hidden).squeeze(-1)
    expected = alpha + (model.beta(e) * mu_p[:, None, :]).sum(-1)
    torch.testing.assert_close(model.predict(batch), expected)


def test_gaussian_kl_matches_the_closed_form():
    mu_q, s_q, mu_p, s_p = map(torch.tensor, (0.3, 0.5, -0.2, 1.5))
    expected = np.log(1.5 / 0.5) + (0.25 + 0.25) / (2 * 2.25) - 0.5
    assert float(gaussian_kl(mu_q, s_q, mu_p, s_p)) == pytest.approx(expected, rel=1e-6)
    assert float(gaussian_kl(mu_q, s_q, mu_q, s_q)) == pytest.approx(0.0, abs=1e-7)


@pytest.mark.parametrize("cls", [LSTMPredictor, TransformerPredictor, FactorVAEPredictor])
def test_each_baseline_fits_and_predicts_through_the_shared_loop(cls, data):
    split = planted_split(data)
    model = cls(preset="tiny", history=8, epochs=2, batch_size=32, num_threads=1, cache_dir=None)
    model.fit(data, split)
    assert model.train_result["n_train"] > 0 and np.isfinite(model.train_result["best_valid_rank_ic"])
    frame = model.predict(data, *split.test)
    assert frame.shape == (len(data.date_index(*split.test)), 8)
    assert np.isfinite(frame.to_numpy()).all()


def test_unknown_settings_and_presets_are_user_errors():
    with pytest.raises(StormBtError, match="unknown setting 'hiden'"):
        LSTMPredictor(hiden=3)
    with pytest.raises(StormBtError, match="unknown preset 'huge'"):
        TransformerPredictor(preset="huge")


@pytest.mark.parametrize("name, setting, needle", [
    ("lstm", dict(hidden=0), "LSTMConfig.hidden=0: must be >= 1"),
    ("lstm", dict(dropout=1.5), "LSTMConfig.dropout=1.5"),
    ("transformer", dict(d_model=30, heads=4), "TransformerConfig.d_model=30: must be divisible"),
    ("transformer", dict(layers=0), "TransformerConfig.layers=0"),
    ("factorvae", dict(n_factors=0), "FactorVAEConfig.n_factors=0"),
    ("factorvae", dict(kl_weight=-1.0), "FactorVAEConfig.kl_weight=-1.0"),
    ("factorvae", dict(recon="l1"), "FactorVAEConfig.recon='l1'")])
def test_a_baseline_setting_out_of_range_is_refused_when_the_model_is_built(name, setting,
                                                                            needle):
    """Before, each was accepted and ended in a torch error (or an unknown loss) at fit time,
    after the data had loaded; `--set` now refuses it before any data is read."""
    cls = model_spec(name).load()
    with pytest.raises(StormBtError, match=re.escape(needle)):
        cls(preset="tiny", cache_dir=None, **setting)
