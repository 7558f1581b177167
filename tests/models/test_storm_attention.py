"""`layers.attend`, the written-out attention of STORM's blocks and fusion, is torch's
scaled dot-product attention: the same outputs and gradients up to float rounding."""
import pytest
import torch
import torch.nn.functional as F

from storm_bt.models.storm.layers import attend


@pytest.mark.parametrize("q_shape, kv_shape", [
    ((12, 4, 5, 16), (12, 4, 5, 16)),      # TS branch: 5 patch tokens a stock
    ((3, 4, 65, 16), (3, 4, 65, 16)),      # CS branch: CLS and 64 day tokens
    ((3, 4, 112, 16), (3, 4, 64, 16)),     # fusion: 28 stocks x 4 tokens read 64 days
])
def test_attend_matches_torch_scaled_dot_product_attention(q_shape, kv_shape):
    gen = torch.Generator().manual_seed(0)
    tensors = [torch.randn(*shape, generator=gen, dtype=torch.float64, requires_grad=True)
               for shape in (q_shape, kv_shape, kv_shape)]
    upstream = torch.randn(*q_shape, generator=gen, dtype=torch.float64)

    ours = attend(*tensors)
    grads = torch.autograd.grad(ours, tensors, upstream)
    theirs = F.scaled_dot_product_attention(*tensors)
    expected = torch.autograd.grad(theirs, tensors, upstream)

    torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-12)
    for got, want in zip(grads, expected):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


def test_attend_weighs_each_key_by_its_softmax_score():
    """One query over two keys: the weights are softmax(q·k / √d), not an even mean."""
    q = torch.tensor([[[2.0, 0.0, 0.0, 0.0]]])
    k = torch.tensor([[[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]])
    v = torch.tensor([[[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]]])
    w = torch.softmax(torch.tensor([1.0, 0.0]), dim=0)          # scores 2 / √4 = 1 and 0
    torch.testing.assert_close(attend(q, k, v)[0, 0, :2], w)
