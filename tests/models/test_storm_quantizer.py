"""The STORM vector quantiser: lookup, straight-through gradient, EMA and grad codebooks."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from storm_bt.models.storm.quantizer import LAPLACE_EPS, VectorQuantizer

torch.set_num_threads(1)

CODES = torch.tensor([[0.0, 0.0], [4.0, 0.0], [0.0, 4.0], [-4.0, -4.0]])


def _quantizer(update: str = "ema", **kwargs) -> VectorQuantizer:
    vq = VectorQuantizer(dim=2, codebook_size=4, update=update, **kwargs)
    with torch.no_grad():
        vq.codebook.copy_(CODES)
        if update == "ema":
            vq.embed_avg.copy_(CODES)
    return vq


def test_lookup_returns_the_nearest_code_by_euclidean_distance():
    torch.manual_seed(0)
    vq = VectorQuantizer(dim=3, codebook_size=16).eval()
    z = torch.randn(2, 5, 3) * 2
    out = vq(z)
    book = vq.codebook.numpy()
    for b in range(2):
        for t in range(5):
            dist = ((book - z[b, t].numpy()) ** 2).sum(axis=1)
            assert out.codes[b, t].item() == int(np.argmin(dist))
            assert torch.allclose(out.q[b, t], vq.codebook[out.codes[b, t]])


def test_straight_through_gradient_is_identity():
    vq = _quantizer().eval()
    z = torch.tensor([[[0.5, 0.2], [3.0, 1.0], [-3.0, -3.5]]])
    jac = torch.autograd.functional.jacobian(lambda t: vq(t).q, z)  # (1,3,2, 1,3,2)
    assert torch.allclose(jac.reshape(6, 6), torch.eye(6))


def test_ema_moves_used_codes_by_the_laplace_smoothed_formula_and_keeps_unused_codes():
    vq = _quantizer(decay=0.9).train()
    # two vectors go to code 1, one to code 2, none to codes 0 and 3
    z = torch.tensor([[[3.0, 1.0], [5.0, 1.0], [1.0, 5.0]]])
    out = vq(z)
    assert out.codes.tolist() == [[1, 1, 2]]

    counts = np.array([0.0, 2.0, 1.0, 0.0])
    sums = np.array([[0, 0], [8.0, 2.0], [1.0, 5.0], [0, 0]])
    n = 0.9 * np.ones(4) + 0.1 * counts
    m = 0.9 * CODES.numpy() + 0.1 * sums
    n_bar = (n + LAPLACE_EPS) / (n.sum() + 4 * LAPLACE_EPS) * n.sum()
    expected = m / n_bar[:, None]
    book = vq.codebook.numpy()
    assert np.allclose(book[[1, 2]], expected[[1, 2]], atol=1e-6)
    assert np.array_equal(book[[0, 3]], CODES.numpy()[[0, 3]])
    assert np.allclose(vq.cluster_size.numpy(), n)
    # the used codes moved towards the mean of their vectors
    means = {1: np.array([4.0, 1.0]), 2: np.array([1.0, 5.0])}
    for k, mean in means.items():
        assert np.linalg.norm(book[k] - mean) < np.linalg.norm(CODES.numpy()[k] - mean)


def test_eval_forward_does_not_update_the_codebook():
    vq = _quantizer().eval()
    vq(torch.tensor([[[3.0, 1.0], [5.0, 1.0]]]))
    assert torch.equal(vq.codebook, CODES)


def test_ema_codebook_is_a_buffer_so_orthogonality_is_inert():
    vq = _quantizer("ema")
    assert "codebook" not in dict(vq.named_parameters())
    assert not vq(torch.ones(1, 2, 2)).losses["orth"].requires_grad


def test_grad_codebook_gets_gradients_from_orthogonality_and_no_ema_overwrite():
    vq = _quantizer("grad").train()
    assert isinstance(vq.codebook, torch.nn.Parameter)
    out = vq(torch.tensor([[[3.0, 1.0], [0.5, 3.0]]]))
    assert torch.equal(vq.codebook.detach(), CODES)  # training forward does not overwrite
    out.losses["orth"].backward()
    assert vq.codebook.grad is not None and vq.codebook.grad.abs().sum() > 0
    # and the codebook term pulls only the chosen codes
    vq.codebook.grad = None
    out = vq(torch.tensor([[[3.0, 1.0]]]))
    out.losses["codebook"].backward()
    grad = vq.codebook.grad
    assert grad[1].abs().sum() > 0 and grad[[0, 2, 3]].abs().sum() == 0


def test_orthogonality_uses_a_random_subset_beyond_max_codes():
    torch.manual_seed(0)
    vq = VectorQuantizer(dim=4, codebook_size=12, orth_max_codes=5)
    subset = vq._orth_codes(vq.codebook)
    rows = {tuple(r) for r in vq.codebook.tolist()}
    assert subset.shape == (5, 4) and len({tuple(r) for r in subset.tolist()} & rows) == 5
    full = VectorQuantizer(dim=4, codebook_size=12)
    assert torch.equal(full._orth_codes(full.codebook), full.codebook)


def test_dead_codes_are_replaced_by_batch_vectors():
    vq = _quantizer(dead_code_threshold=0.5).train()
    vq.cluster_size.copy_(torch.tensor([1.0, 1.0, 0.1, 0.1]))  # codes 2, 3 are dead
    z = torch.tensor([[[7.0, 7.0], [7.0, 7.0]]])
    vq(z)
    book = vq.codebook
    # both dead codes restart at the batch vector; code 2 wins the tie and takes the batch
    assert torch.equal(book[3], torch.tensor([7.0, 7.0]))
    assert torch.allclose(book[2], torch.tensor([7.0, 7.0]), atol=1e-3)
    assert torch.equal(book[[0, 1]], CODES[[0, 1]])


def test_usage_statistics_and_reset():
    vq = _quantizer().eval()
    vq(torch.tensor([[[0.1, 0.0], [0.0, 0.1], [4.0, 0.1], [3.9, 0.0]]]))  # codes 0,0,1,1
    stats = vq.usage_stats()
    assert stats["codes_used"] == 2.0
    assert stats["perplexity"] == pytest.approx(2.0)
    vq.reset_usage()
    assert vq.usage_stats() == {"perplexity": 0.0, "codes_used": 0.0}


def test_code_projection_keeps_shapes():
    torch.manual_seed(0)
    vq = VectorQuantizer(dim=6, codebook_size=8, code_dim=3)
    out = vq(torch.randn(2, 4, 6))
    assert out.q.shape == (2, 4, 6) and vq.codebook.shape == (8, 3)


def test_normalised_quantiser_keeps_inputs_and_codes_on_the_sphere():
    torch.manual_seed(0)
    vq = VectorQuantizer(dim=4, codebook_size=6, normalize=True).train()
    assert torch.allclose(vq.codebook.norm(dim=-1), torch.full((6,), 2.0))
    z = 10 * torch.randn(3, 5, 4)
    out = vq(z)
    # the lookup sees z / ||z|| * sqrt(dim): a rescaled z picks the same codes
    again = VectorQuantizer(dim=4, codebook_size=6, normalize=True).eval()
    again.codebook.copy_(vq.codebook)
    assert torch.equal(again(0.1 * z).codes, again(z).codes)
    # after the EMA step every code is back on the sphere of radius sqrt(4)
    assert torch.allclose(vq.codebook.norm(dim=-1), torch.full((6,), 2.0), atol=1e-5)
    assert torch.allclose(out.q.norm(dim=-1), torch.full((3, 5), 2.0), atol=1e-5)


def test_codes_idle_for_the_set_number_of_steps_are_reset():
    vq = _quantizer(dead_code_idle_steps=2).train()
    z = torch.tensor([[[0.1, 0.0], [4.1, 0.0]]])                 # codes 0 and 1 only
    vq(z)
    vq(z)
    assert vq.idle_steps.tolist() == [0.0, 0.0, 2.0, 2.0]
    vq(torch.tensor([[[9.0, 9.0], [9.0, 9.0]]]))                 # codes 2, 3 restart here
    assert torch.allclose(vq.codebook[3], torch.tensor([9.0, 9.0]))
