"""The causal windowed scaler (STORM_SPEC 1.5, with D14 fixed).

One scaler covers the whole timeline (it is not refitted per split). Its rows are cut, from
the first row, into consecutive non-overlapping blocks of `block` rows (64). Per stock s and
feature f, a row t of block k >= 1 is normalised with the statistics of block k-1:

    mu    = mean(x[block k-1])                   sigma = std(x[block k-1])   (ddof = 0)

Block 0 has no previous block: its row t uses the expanding statistics of rows 0..t. So a row
never reads a later row. Then

    x_hat = clip((x - mu) / max(sigma, min_std), -clip, clip)     (min_std = 1e-6, clip = 10)

The floor and the clip stop a constant previous block (e.g. zero-filled warm-up features)
from blowing values up, which the reference's sigma + 1e-12 does not (D14).

Statistics are measured from the block's first row (or row 0 for block 0), so a constant block
has exactly mu = its value and sigma = 0. NaN in the input stays NaN in the output.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Elements (per float64 temporary) of one chunk of blocks.
_CHUNK_ELEMENTS = 1_000_000


@dataclass(frozen=True)
class ScaledFeatures:
    """Scaled features and the statistics each row was scaled with.

    Attributes:
        values: float32 (D, S, F), x_hat.
        mean: float32 (D, S, K), the mu used for each row, for the first K features
            (``keep_stats``; K = F by default).
        std: float32 (D, S, K), the sigma used for each row, after the min_std floor, so
            ``x = values * std + mean`` wherever the clip did not bite.
    """

    values: np.ndarray
    mean: np.ndarray
    std: np.ndarray


def causal_block_scale(x: np.ndarray, block: int = 64, min_std: float = 1e-6,
                       clip: float = 10.0, keep_stats: int | None = None) -> ScaledFeatures:
    """Scale `x` (dates, stocks, features) causally, block by block (see module docstring).

    `keep_stats` = K keeps mu and sigma of the first K features only (None: all). The values
    do not depend on it; at 501 stocks x 152 features the two float32 statistics arrays are
    3.7 GB, so a caller that needs only the price fields' statistics passes their count.
    """
    x = np.asarray(x)
    if x.ndim != 3:
        raise ValueError(f"x must be (dates, stocks, features), got shape {x.shape}")
    if block < 1 or not min_std > 0 or not clip > 0:
        raise ValueError(f"need block >= 1, min_std > 0 and clip > 0 "
                         f"(got block={block}, min_std={min_std}, clip={clip})")
    n_stats = x.shape[2] if keep_stats is None else keep_stats
    if not 0 <= n_stats <= x.shape[2]:
        raise ValueError(f"keep_stats={keep_stats} must lie in [0, {x.shape[2]}]")
    values = np.empty(x.shape, dtype=np.float32)
    mean = np.empty(x.shape[:2] + (n_stats,), dtype=np.float32)
    std = np.empty(x.shape[:2] + (n_stats,), dtype=np.float32)
    # Stocks are independent: a slice of them at a time keeps the temporaries in cache.
    n_stocks, n_feats = x.shape[1], x.shape[2]
    width = max(1, _CHUNK_ELEMENTS // max(1, block * n_feats))
    for s0 in range(0, n_stocks, width):
        stocks = slice(s0, min(s0 + width, n_stocks))
        _scale_stocks(x[:, stocks], (values[:, stocks], mean[:, stocks], std[:, stocks]),
                      block, min_std, clip)
    return ScaledFeatures(values, mean, std)


def _scale_stocks(x: np.ndarray, out: tuple[np.ndarray, np.ndarray, np.ndarray], block: int,
                  min_std: float, clip: float) -> None:
    """Scale x (D, S', F) into the views `out`: values (D, S', F), mean and std (D, S', K)."""
    n_rows = x.shape[0]
    if n_rows == 0:
        return
    # Block 0: expanding statistics of rows 0..t, measured from row 0.
    first = np.asarray(x[:block], dtype=np.float64)
    d = first - first[:1]
    count = np.arange(1, len(first) + 1, dtype=np.float64).reshape(-1, 1, 1)
    d_mean = np.cumsum(d, axis=0) / count
    var = np.maximum(np.cumsum(d * d, axis=0) / count - d_mean * d_mean, 0.0)
    _scale_into(out, slice(0, len(first)), first, first[:1] + d_mean, np.sqrt(var),
                min_std, clip)

    # Blocks k >= 1: the statistics of block k-1, a chunk of blocks at a time.
    n_blocks = -(-n_rows // block)
    step = max(1, _CHUNK_ELEMENTS // max(1, block * int(np.prod(x.shape[1:]))))
    for k0 in range(1, n_blocks, step):
        k1 = min(k0 + step, n_blocks)
        prev = np.asarray(x[(k0 - 1) * block:(k1 - 1) * block], dtype=np.float64)
        mu, sigma = _block_stats(prev.reshape((k1 - k0, block) + x.shape[1:]))
        n_full = min(k1, n_rows // block) - k0            # the last block may be partial
        if n_full > 0:
            rows = slice(k0 * block, (k0 + n_full) * block)
            _scale_into(out, rows, x[rows], mu[:n_full], sigma[:n_full], min_std, clip,
                        blocks=(n_full, block))
        if n_full < k1 - k0:
            rows = slice((k0 + n_full) * block, n_rows)
            _scale_into(out, rows, x[rows], mu[n_full], sigma[n_full], min_std, clip)


def _block_stats(blocks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and population std over axis 1 of (n, block, S, F), as (n, 1, S, F); measured
    from each block's first row so that a constant block has std exactly 0."""
    origin = blocks[:, :1]
    d = blocks - origin
    d_mean = d.mean(axis=1, keepdims=True)
    d -= d_mean
    d *= d
    return origin + d_mean, np.sqrt(d.mean(axis=1, keepdims=True))


def _scale_into(out: tuple[np.ndarray, np.ndarray, np.ndarray], rows: slice, x: np.ndarray,
                mu: np.ndarray, sigma: np.ndarray, min_std: float, clip: float,
                blocks: tuple[int, int] | None = None) -> None:
    """Store clip((x - mu)/max(sigma, min_std)), and mu and the floored sigma of the first K
    features, for `rows`. With `blocks` = (n, block), x's rows are n blocks and mu, sigma
    are (n, 1, S, F)."""
    sigma = np.maximum(sigma, min_std)
    views = [o[rows] for o in out]
    if blocks is not None:
        x = x.reshape(blocks + x.shape[1:])
        views = [v.reshape(blocks + v.shape[1:], copy=False) for v in views]   # views only
    scaled = np.subtract(x, mu, dtype=np.float64)
    scaled /= sigma
    np.clip(scaled, -clip, clip, out=scaled)
    views[0][...] = scaled
    k = views[1].shape[-1]
    views[1][...] = mu[..., :k]
    views[2][...] = sigma[..., :k]
