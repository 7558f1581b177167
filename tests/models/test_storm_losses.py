"""STORM loss terms against values worked out by hand on tiny tensors."""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from storm_bt.models.storm import StormModel, tiny
from storm_bt.models.neural.targets import (cross_sectional_rank_gauss, cross_sectional_zscore,
                                          masked_mse)
from storm_bt.models.storm import losses as L
from storm_bt.models.storm.synthetic import random_batch

torch.set_num_threads(1)


def test_commitment_is_mean_squared_error_and_stops_gradient_to_codes():
    z = torch.tensor([[1.0, 2.0], [0.0, -1.0]], requires_grad=True)
    q = torch.tensor([[0.0, 2.0], [2.0, 1.0]], requires_grad=True)
    loss = L.commitment_loss(z, q)
    assert loss.item() == pytest.approx((1 + 0 + 4 + 4) / 4)
    loss.backward()
    assert q.grad is None
    assert torch.allclose(z.grad, 2 * (z - q).detach() / 4)


def test_orthogonality_of_three_codes_in_the_plane():
    # normalised codes (1,0), (0,1), (1,1)/sqrt2: squared cosines 1,1,1 on the diagonal and
    # 0, 1/2, 1/2 off it (each twice) -> sum 5; 5/K^2 - 1/K = 5/9 - 3/9
    codes = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 3.0]])
    assert L.orthogonality_loss(codes).item() == pytest.approx(2 / 9)


def test_orthogonality_is_zero_for_orthonormal_codes():
    assert L.orthogonality_loss(torch.eye(4) * 5).item() == pytest.approx(0.0, abs=1e-7)


def test_diversity_fixed_is_minus_entropy_of_batch_mean_of_nearest_code_softmax():
    # softmax(-d^2) of (0, ln3) is (3/4, 1/4); the mirrored sample gives (1/4, 3/4);
    # their mean (1/2, 1/2) has entropy ln 2
    ln3 = math.log(3.0)
    sq = torch.tensor([[[0.0, ln3]], [[ln3, 0.0]]])
    assert L.diversity_loss(sq, "fixed", 1.0).item() == pytest.approx(-math.log(2.0))
    p = L.code_probabilities(sq[:1], "fixed", 1.0)
    assert torch.allclose(p, torch.tensor([[[0.75, 0.25]]]))


def test_diversity_fixed_temperature_divides_squared_distance():
    sq = torch.tensor([[[0.0, 2 * math.log(3.0)]]])
    p = L.code_probabilities(sq, "fixed", 2.0)
    assert torch.allclose(p, torch.tensor([[[0.75, 0.25]]]))


def test_diversity_parity_favours_the_farthest_code():
    # parity: p = softmax(+||z - e|| tau); distances (0, 1) -> (1, e)/(1 + e)
    sq = torch.tensor([[[0.0, 1.0]]])
    a, b = 1 / (1 + math.e), math.e / (1 + math.e)
    assert L.diversity_loss(sq, "parity", 1.0).item() == pytest.approx(a * math.log(a) + b * math.log(b))
    p = L.code_probabilities(sq, "parity", 1.0)
    assert p[0, 0, 1] > p[0, 0, 0]


def test_clip_on_aligned_pairs():
    # identical orthonormal pairs: logits e*I, each CE = log(1 + exp(-e)); the norm of the
    # inputs does not matter
    eye = torch.eye(2)
    expected = math.log(1 + math.exp(-math.e))
    assert L.clip_loss(eye, eye, 1.0).item() == pytest.approx(expected)
    assert L.clip_loss(3 * eye, 0.5 * eye, 1.0).item() == pytest.approx(expected)


def test_clip_is_symmetric_infonce_average_of_rows_and_columns():
    a = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    b = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    s = math.e  # logits s*[[1,0],[1,0]]
    row0 = -math.log(math.exp(s) / (math.exp(s) + 1))
    row1 = -math.log(1 / (math.exp(s) + 1))
    cols = math.log(2.0)  # both columns have two equal logits
    expected = 0.5 * ((row0 + row1) / 2 + cols)
    assert L.clip_loss(a, b, 1.0).item() == pytest.approx(expected)
    assert L.clip_loss(b, a, 1.0).item() == pytest.approx(expected)


def test_kl_of_two_diagonal_gaussians_by_hand():
    # dim 1: N(0,1)||N(1,4): 1/2 (ln4 + (1+1)/4 - 1); dim 2: N(1,4)||N(1,1): 1/2 (-ln4 + 4 - 1)
    mu1, lv1 = torch.tensor([[0.0, 1.0]]), torch.tensor([[0.0, math.log(4.0)]])
    mu2, lv2 = torch.tensor([[1.0, 1.0]]), torch.tensor([[math.log(4.0), 0.0]])
    assert L.gaussian_kl(mu1, lv1, mu2, lv2).item() == pytest.approx(1.25)


def test_kl_matches_torch_distributions_and_is_zero_for_equal_gaussians():
    g = torch.Generator().manual_seed(0)
    mu1, lv1, mu2, lv2 = (torch.randn(3, 5, generator=g) for _ in range(4))
    ours = L.gaussian_kl(mu1, lv1, mu2, lv2)
    ref = torch.distributions.kl_divergence(
        torch.distributions.Normal(mu1, (0.5 * lv1).exp()),
        torch.distributions.Normal(mu2, (0.5 * lv2).exp())).sum(-1)
    assert torch.allclose(ours, ref, atol=1e-5)
    assert torch.allclose(L.gaussian_kl(mu1, lv1, mu1, lv1), torch.zeros(3), atol=1e-6)


def test_reconstruction_sse_sums_each_sample():
    pred = torch.tensor([[[1.0, 2.0]], [[0.0, 0.0]]])
    target = torch.tensor([[[0.0, 0.0]], [[3.0, 0.0]]])
    assert L.reconstruction_sse(pred, target).tolist() == [5.0, 9.0]


def test_price_constraint_counts_relu_violations_of_low_and_high():
    # fields open, high, low, close, adj_close; row 0 is consistent, row 1 has high < low.
    prices = torch.tensor([[10.0, 12.0, 9.0, 11.0, 11.0],
                           [10.0, 9.0, 11.0, 10.0, 10.0]])
    # low - (o,h,c,adj) = 11 - (10,9,10,10) -> (1,2,1,1); (o,l,c,adj) - high -> (1,2,1,1);
    # each term is a mean over 2 rows x 4 fields
    assert L.price_constraint_loss(prices, low=2, high=1).item() == pytest.approx(5 / 8 + 5 / 8)
    assert L.price_constraint_loss(prices[:1], low=2, high=1).item() == 0.0


def test_masked_mse_ignores_unlabelled_entries():
    pred = torch.tensor([[1.0, 5.0], [0.0, 2.0]])
    y = torch.tensor([[0.0, 0.0], [0.0, 0.0]])
    mask = torch.tensor([[True, False], [True, True]])
    assert masked_mse(pred, y, mask).item() == pytest.approx((1 + 0 + 4) / 3)


def test_cs_zscore_uses_only_labelled_stocks():
    y = torch.tensor([[1.0, 3.0, 100.0], [2.0, 0.0, 0.0]])
    mask = torch.tensor([[True, True, False], [True, False, False]])
    z = cross_sectional_zscore(y, mask)
    assert torch.allclose(z[0], torch.tensor([-1.0, 1.0, 0.0]), atol=1e-5)
    assert z[1].tolist() == [0.0, 0.0, 0.0]  # one label: nothing to compare


def test_cs_rank_gauss_is_the_standardised_normal_score_of_the_average_rank():
    from scipy.special import ndtri
    from scipy.stats import rankdata

    y = torch.tensor([[0.03, -0.01, 0.5, -0.01, 9.0, 0.0], [2.0, 1.0, 0.0, 0.0, 0.0, 0.0]],
                     dtype=torch.float64)
    mask = torch.tensor([[True, True, True, True, False, True], [True, True, False] + [False] * 3])
    g = cross_sectional_rank_gauss(y, mask)
    row = y[0, mask[0]].numpy()
    expected = ndtri((rankdata(row) - 0.5) / len(row))  # ties share their mean rank
    expected = (expected - expected.mean()) / expected.std()
    assert np.allclose(g[0, mask[0]].numpy(), expected, atol=1e-5)
    assert g[0, 1] == g[0, 3] and g[0, 4] == 0.0   # the tie; the unlabelled stock
    assert np.allclose(g[1].numpy(), [1, -1, 0, 0, 0, 0], atol=1e-5)  # two labels: ±1
    # order is all it sees: an increasing transform, or an extreme return, changes nothing
    assert torch.allclose(cross_sectional_rank_gauss(torch.sinh(30 * y), mask), g)
    assert cross_sectional_rank_gauss(y, torch.zeros_like(mask)).abs().sum() == 0


def test_model_label_norm_cs_rank_fits_rank_scores():
    cfg = replace(tiny.with_data(6, 12, ("open", "high", "low", "close", "adj_close")),
                  label_norm="cs_rank")
    batch = random_batch(cfg, n=3)
    y, mask = StormModel(cfg)._labels(batch)
    assert torch.equal(y, cross_sectional_rank_gauss(batch.y * batch.label_mask.bool(), mask))
    assert not torch.allclose(y, cross_sectional_zscore(batch.y, mask))


def _recon_by_hand(model, batch, n_stocks):
    """Per-branch (prediction, target) with the CS target computed here with numpy:
    the day's cross-sectional mean and population std of each price field."""
    target = batch.x[..., :5].numpy().astype(np.float64)
    moments = np.concatenate([target.mean(axis=2), np.sqrt(target.var(axis=2) + 1e-6)], axis=-1)
    with torch.no_grad():
        enc = model._encode(batch)
        return {name: (branch.reconstruct(enc.quantized[name].q, n_stocks).numpy(),
                       moments if name == "cs" else target)
                for name, branch in model.branches.items()}


def test_model_recon_term_is_the_per_element_mean_with_cs_moments_at_cs_scale():
    cfg = replace(tiny.with_data(6, 12, ("open", "high", "low", "close", "adj_close")),
                  recon_weight=0.3, recon_cs_scale=0.5)
    torch.manual_seed(0)
    model = StormModel(cfg).eval()
    batch = random_batch(cfg, n=3)
    parts = _recon_by_hand(model, batch, 6)
    assert parts["cs"][0].shape == (3, 32, 10) and parts["ts"][0].shape == (3, 32, 6, 5)
    mse = {k: float(((p - t) ** 2).mean()) for k, (p, t) in parts.items()}
    expected = 0.3 * (0.5 * mse["cs"] + mse["ts"])
    assert model.losses(batch)["recon"].item() == pytest.approx(expected, rel=1e-5)


def test_model_recon_parity_sums_each_sample_and_averages_over_batch():
    cfg = replace(tiny.with_data(6, 12, ("open", "high", "low", "close", "adj_close")),
                  recon_reduction="sum", recon_weight=1e-3, recon_cs_scale=1e-3)
    torch.manual_seed(0)
    model = StormModel(cfg).eval()
    batch = random_batch(cfg, n=3)
    parts = _recon_by_hand(model, batch, 6)
    sse = {k: float(((p - t) ** 2).sum()) for k, (p, t) in parts.items()}
    expected = 1e-3 * (1e-3 * sse["cs"] + sse["ts"]) / 3
    assert model.losses(batch)["recon"].item() == pytest.approx(expected, rel=1e-5)


def test_model_price_term_only_when_high_and_low_are_price_fields():
    full = tiny.with_data(6, 12, ("open", "high", "low", "close", "adj_close"))
    close_only = tiny.with_data(6, 12, ("close", "adj_close"))
    assert "price" in StormModel(full).eval().losses(random_batch(full))
    assert "price" not in StormModel(close_only).eval().losses(random_batch(close_only))


def test_model_counts_each_quantiser_term_once_with_its_weight():
    cfg = replace(tiny.with_data(6, 12, ("close", "adj_close")), commit_weight=2.0,
                  diversity_weight=0.2, orth_weight=0.2)
    torch.manual_seed(0)
    model = StormModel(cfg).eval()
    batch = random_batch(cfg)
    terms = model.losses(batch)
    with torch.no_grad():
        enc = model._encode(batch)
    for name in ("cs", "ts"):
        raw = enc.quantized[name].losses
        assert terms[f"commit_{name}"].item() == pytest.approx(2.0 * raw["commit"].item(), rel=1e-6)
        assert terms[f"div_{name}"].item() == pytest.approx(0.2 * raw["div"].item(), rel=1e-6)
        assert terms[f"orth_{name}"].item() == pytest.approx(0.2 * raw["orth"].item(), rel=1e-6)
    parts = sum(v.item() for k, v in terms.items() if k != "total")
    assert terms["total"].item() == pytest.approx(parts, rel=1e-6)


def test_scaled_diversity_divides_by_temperature_times_the_mean_distance_gap():
    # one token, distances (0, 2, 4): gap = mean - min = 2; tau 0.5 -> logits -(0, 2, 4) / 1
    sq = torch.tensor([[[0.0, 2.0, 4.0]]])
    p = L.code_probabilities(sq, "scaled", 0.5)
    expected = torch.softmax(torch.tensor([0.0, -2.0, -4.0]), dim=0)
    assert torch.allclose(p[0, 0], expected)
    # invariant to the scale of the distances
    assert torch.allclose(L.code_probabilities(10 * sq, "scaled", 0.5), p)


def test_gaussian_nll_matches_torch_distributions_on_labelled_entries():
    mu = torch.tensor([[0.0, 1.0, -1.0]])
    sigma = torch.tensor([[1.0, 2.0, 0.5]])
    y = torch.tensor([[0.5, 0.0, 3.0]])
    mask = torch.tensor([[True, True, False]])
    expected = -torch.distributions.Normal(mu[0, :2], sigma[0, :2]).log_prob(y[0, :2]).mean()
    assert L.gaussian_nll(mu, sigma, y, mask).item() == pytest.approx(expected.item(), rel=1e-6)


def test_ic_loss_is_one_minus_the_mean_pearson_correlation_over_labelled_stocks():
    pred = torch.tensor([[1.0, 2.0, 3.0, 50.0], [1.0, 2.0, 3.0, 4.0]])
    y = torch.tensor([[2.0, 4.0, 6.0, -9.0], [4.0, 3.0, 2.0, 1.0]])
    mask = torch.tensor([[True, True, True, False], [True, True, True, True]])
    # row 0: perfectly correlated on the 3 labelled stocks (+1); row 1: reversed (-1)
    assert L.ic_loss(pred, y, mask).item() == pytest.approx(1.0 - 0.0, abs=1e-6)
    assert L.ic_loss(pred[:1], y[:1], mask[:1]).item() == pytest.approx(0.0, abs=1e-6)
    # a row with a single label is left out
    lone = torch.tensor([[True, False, False, False]])
    assert L.ic_loss(pred[1:], y[1:], lone)\
        .item() == pytest.approx(1.0, abs=1e-6)


def test_ic_loss_has_finite_gradients_on_unlabelled_and_constant_rows():
    """A day without labels, or with one prediction for every stock, must not put NaN into
    the gradient (the plain formula divides 0 by 0 there)."""
    pred = torch.tensor([[1.0, 2.0, 3.0, 4.0], [0.5, 0.5, 0.5, 0.5], [1.0, 3.0, 2.0, 4.0]],
                        requires_grad=True)
    y = torch.tensor([[1.0, 2.0, 4.0, 3.0], [1.0, 2.0, 3.0, 4.0], [0.0, 1.0, 2.0, 3.0]])
    mask = torch.tensor([[False] * 4, [True] * 4, [True] * 4])
    loss = L.ic_loss(pred, y, mask)
    loss.backward()
    assert torch.isfinite(pred.grad).all()
    assert (pred.grad[:2] == 0).all()            # no gradient from the two degenerate rows
    # the constant row counts as corr 0; the unlabelled row is left out of the mean
    corr_2 = torch.corrcoef(torch.stack([pred[2].detach(), y[2]]))[0, 1]
    assert loss.item() == pytest.approx(1.0 - (0.0 + corr_2.item()) / 2, abs=1e-6)
