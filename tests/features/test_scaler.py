"""The causal block scaler (STORM_SPEC 1.5, D14 fixed): block k uses block k-1's statistics,
block 0 expanding ones, the min_std floor and the clip, and no row reads a later row."""
from __future__ import annotations

import statistics

import numpy as np
import pytest

from storm_bt.features.alpha158 import FeatureConfig, compute_features
from storm_bt.features.scaler import causal_block_scale


def hand_scaled(x: np.ndarray, block: int, min_std: float = 1e-6, clip: float = 10.0):
    """Row by row, stock by stock, feature by feature, with the statistics module."""
    n_rows, n_stocks, n_feats = x.shape
    values, mean, std = (np.zeros(x.shape) for _ in range(3))
    for t in range(n_rows):
        k = t // block
        ref_rows = range(0, t + 1) if k == 0 else range((k - 1) * block, k * block)
        for s in range(n_stocks):
            for f in range(n_feats):
                ref = [float(x[i, s, f]) for i in ref_rows]
                mu, sigma = statistics.fmean(ref), max(statistics.pstdev(ref), min_std)
                mean[t, s, f], std[t, s, f] = mu, sigma
                values[t, s, f] = min(max((x[t, s, f] - mu) / sigma, -clip), clip)
    return values, mean, std


def test_block_k_uses_the_statistics_of_block_k_minus_1():
    rng = np.random.default_rng(1)
    # 11 rows, blocks of 4: rows 0-3 expanding, 4-7 use rows 0-3, 8-10 (partial) use 4-7
    x = rng.integers(-20, 20, size=(11, 2, 3)).astype(float) * [1.0, 10.0, 0.1]
    got = causal_block_scale(x, block=4)
    values, mean, std = hand_scaled(x, block=4)
    np.testing.assert_allclose(got.mean, mean, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(got.std, std, rtol=1e-6)
    np.testing.assert_allclose(got.values, values, rtol=1e-5, atol=1e-5)
    assert got.values.dtype == got.mean.dtype == got.std.dtype == np.float32


def test_tiny_hand_computed_numbers():
    x = np.array([2.0, 4.0, 6.0, 8.0, 5.0, 11.0, 0.0]).reshape(-1, 1, 1)
    got = causal_block_scale(x, block=3)
    # row 0: mean 2, std 0 -> floor; row 1: mean 3, std 1; row 2: mean 4, std sqrt(8/3)
    np.testing.assert_allclose(got.mean[:3, 0, 0], [2.0, 3.0, 4.0])
    np.testing.assert_allclose(got.std[:3, 0, 0], [1e-6, 1.0, np.sqrt(8 / 3)], rtol=1e-6)
    np.testing.assert_allclose(got.values[:3, 0, 0], [0.0, 1.0, 2 / np.sqrt(8 / 3)], rtol=1e-6)
    # rows 3-5 use block 0 (2, 4, 6): mean 4, std sqrt(8/3)
    np.testing.assert_allclose(got.values[3:6, 0, 0], np.array([4.0, 1.0, 7.0]) / np.sqrt(8 / 3),
                               rtol=1e-6)
    # row 6 uses block 1 (8, 5, 11): mean 8, std sqrt(6)
    np.testing.assert_allclose(got.values[6, 0, 0], -8 / np.sqrt(6), rtol=1e-6)


def test_constant_previous_block_does_not_explode():
    x = np.zeros((8, 1, 2))
    x[4:, 0, 0] = [0.0, 1e-9, -3.0, 2.0]     # block 0 all zeros (a zero-filled warm-up)
    x[:, 0, 1] = 7.0                         # constant throughout
    got = causal_block_scale(x, block=4)
    assert np.isfinite(got.values).all()
    np.testing.assert_array_equal(got.std[:, 0, :], np.float32(1e-6))
    np.testing.assert_allclose(got.values[4:, 0, 0], [0.0, 1e-3, -10.0, 10.0], rtol=1e-5)
    np.testing.assert_array_equal(got.values[:, 0, 1], 0.0)
    np.testing.assert_array_equal(got.mean[:, 0, 1], 7.0)


def test_values_are_clipped():
    x = np.array([1.0, -1.0, 1.0, -1.0, 500.0, -500.0, 3.0, 0.5]).reshape(-1, 1, 1)
    got = causal_block_scale(x, block=4, clip=2.5)
    np.testing.assert_array_equal(got.values[4:, 0, 0], [2.5, -2.5, 2.5, 0.5])
    assert np.abs(causal_block_scale(x, block=4).values).max() == 10.0


def test_mean_and_std_map_scaled_values_back():
    rng = np.random.default_rng(2)
    x = rng.normal(100.0, 5.0, size=(300, 4, 3))
    got = causal_block_scale(x)
    inside = np.abs(got.values) < 10
    back = got.values.astype(float) * got.std + got.mean
    np.testing.assert_allclose(back[inside], x[inside], rtol=1e-5)


@pytest.mark.parametrize("t", [0, 40, 63, 64, 100, 191, 250])
def test_rows_up_to_t_ignore_the_cut_future(t):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(300, 3, 5)) * rng.uniform(0.1, 100, size=5)
    full = causal_block_scale(x)
    head = causal_block_scale(x[:t + 1])
    for a, b in zip((head.values, head.mean, head.std), (full.values, full.mean, full.std)):
        np.testing.assert_array_equal(a, b[:t + 1])


def test_rows_up_to_t_ignore_a_perturbed_future():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(300, 3, 5))
    t = 150
    y = x.copy()
    y[t + 1:] = rng.normal(50.0, 30.0, size=y[t + 1:].shape)
    a, b = causal_block_scale(x), causal_block_scale(y)
    np.testing.assert_array_equal(a.values[:t + 1], b.values[:t + 1])
    np.testing.assert_array_equal(a.std[:t + 1], b.std[:t + 1])
    assert not np.array_equal(a.values[t + 1:], b.values[t + 1:])


def test_real_features_scale_to_finite_bounded_values(embedded_panel):
    panel = embedded_panel.select(["AAPL", "KO"]).since("2018-01-01")
    raw, names = compute_features(panel, FeatureConfig())
    got = causal_block_scale(raw)
    assert got.values.shape == raw.shape
    assert np.isfinite(got.values).all() and np.abs(got.values).max() <= 10.0
    # the close column of row 200 (block 3) is scaled with rows 128..191 (block 2)
    k = names.index("close")
    ref = raw[128:192, :, k]
    np.testing.assert_allclose(got.mean[200, :, k], ref.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(got.std[200, :, k], ref.std(axis=0), rtol=1e-5)


def test_bad_shape_or_parameters_raise():
    with pytest.raises(ValueError):
        causal_block_scale(np.zeros((5, 2)))
    with pytest.raises(ValueError):
        causal_block_scale(np.zeros((5, 2, 1)), block=0)


def test_chunking_does_not_change_the_numbers(monkeypatch):
    import storm_bt.features.scaler as scaler

    rng = np.random.default_rng(5)
    x = rng.normal(size=(300, 7, 5)) * 3.0 + 1.0
    whole = causal_block_scale(x, block=16)
    monkeypatch.setattr(scaler, "_CHUNK_ELEMENTS", 16 * 5 * 2)   # 2 stocks, 1 block a chunk
    chunked = causal_block_scale(x, block=16)
    for a, b in zip((whole.values, whole.mean, whole.std),
                    (chunked.values, chunked.mean, chunked.std)):
        np.testing.assert_array_equal(a, b)


def test_keep_stats_keeps_the_leading_features_statistics_and_the_same_values(monkeypatch):
    """`build_feature_set` keeps only the price fields' mu and sigma (it halves the peak
    memory on the S&P 500); the scaled values and those statistics are unchanged."""
    import storm_bt.features.scaler as scaler

    rng = np.random.default_rng(7)
    x = rng.normal(size=(150, 6, 9)) * 2.0 - 1.0
    monkeypatch.setattr(scaler, "_CHUNK_ELEMENTS", 16 * 9 * 2)   # chunks of stocks and blocks
    whole = causal_block_scale(x, block=16)
    kept = causal_block_scale(x, block=16, keep_stats=3)
    np.testing.assert_array_equal(kept.values, whole.values)
    assert kept.mean.shape == kept.std.shape == (150, 6, 3)
    np.testing.assert_array_equal(kept.mean, whole.mean[..., :3])
    np.testing.assert_array_equal(kept.std, whole.std[..., :3])
    with pytest.raises(ValueError, match="keep_stats"):
        causal_block_scale(x, keep_stats=10)
