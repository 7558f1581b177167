"""Per-stock characteristics, ranked across each date's cross-section.

The causal scaler (`storm_bt.features.scaler`) standardises every feature per stock against
that stock's own history, so no model input says where a stock stands against the other
stocks: a stock trading $10M a day and one trading $1B a day look alike once scaled. These
characteristics restore that cross-sectional position. For stock s on date t, from its rows
up to t only (n = 64 trading days):

    dollar_volume  log( mean_{t-n+1..t} close * volume )    (0 when the data has no volume)
    volatility     log( std_{t-n+1..t} r )                   r_t = P_t / P_{t-1} - 1
    momentum       P_t / P_{t-n} - 1
    reversal       P_t / P_{t-5} - 1                         P = adj_close

Each is then replaced by its standardised cross-sectional rank on date t, among the k stocks
with a real row on t and a finite value:

    c = (rank - (k + 1) / 2) / sqrt((k^2 - 1) / 12)       (mean 0, variance 1 over the k)

and 0 where the stock has no value (too little history, no row that day) or k < 2. Date t
reads rows up to t only, so the characteristics are as causal as the features.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from storm_bt.data.panel import Panel

#: The characteristics, in their column order (always all four: `dollar_volume` is 0
#: without a volume field, so a model's input width does not depend on the data's fields).
CHARACTERISTIC_NAMES: tuple[str, ...] = ("dollar_volume", "volatility", "momentum", "reversal")
#: Trading days of the rolling windows, and of the short-term reversal.
WINDOW = 64
REVERSAL = 5


def raw_characteristics(panel: Panel, window: int = WINDOW,
                        reversal: int = REVERSAL) -> np.ndarray:
    """(D, S, K) float64 of the characteristics before ranking (NaN where unknown)."""
    price = pd.DataFrame(panel.array("adj_close"))
    returns = panel.returns()
    out = np.full(price.shape + (len(CHARACTERISTIC_NAMES),), np.nan)
    if "volume" in panel.fields:
        dollars = pd.DataFrame(panel.array("close") * panel.array("volume"))
        mean = dollars.rolling(window, min_periods=window).mean().to_numpy()
        with np.errstate(divide="ignore", invalid="ignore"):
            out[..., 0] = np.where(mean > 0, np.log(mean), np.nan)
    else:
        out[..., 0] = 0.0
    std = returns.rolling(window, min_periods=window).std().to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        out[..., 1] = np.where(std > 0, np.log(std), np.nan)
    out[..., 2] = (price / price.shift(window) - 1.0).to_numpy()
    out[..., 3] = (price / price.shift(reversal) - 1.0).to_numpy()
    return out


def cross_sectional_ranks(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Standardised ranks over axis 1 of `values` (D, S, K) among the entries that are valid
    (D, S) and finite; 0 elsewhere and on dates with fewer than two such entries. Ties take
    their average rank."""
    known = valid[..., None] & np.isfinite(values)
    out = np.zeros(values.shape, dtype=np.float32)
    for k in range(values.shape[2]):
        frame = pd.DataFrame(np.where(known[..., k], values[..., k], np.nan))
        ranks = frame.rank(axis=1).to_numpy()
        count = known[..., k].sum(axis=1, keepdims=True).astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            scaled = (ranks - (count + 1) / 2) / np.sqrt((count ** 2 - 1) / 12)
        out[..., k] = np.where(known[..., k] & (count >= 2), scaled, 0.0)
    return out


def stock_characteristics(panel: Panel) -> np.ndarray:
    """(D, S, K) float32 standardised cross-sectional ranks of `CHARACTERISTIC_NAMES`."""
    return cross_sectional_ranks(raw_characteristics(panel), panel.mask)
