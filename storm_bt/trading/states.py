"""Per-day state vectors of one stock for the trading agents (each row uses data up to its date).

Price state (the DQN / SAC / PPO baselines): the stock's F causally scaled features on day t
(`FeatureSet.features[t, s, :]`, the inputs LightGBM and STORM read), so the baselines and
the STORM agent differ only by the state.

STORM state (section 7, made compact): the fitted model's factor tokens of the window
ending on day t, phi = [z || q] (width D = 2 d), per branch present:

    CS branch: tokens c_1..c_T (one per day)               -> [mean_k c_k, c_T]
    TS branch: the chosen stock's tokens u_1..u_B           -> [mean_j u_j, u_B]
               (one per block of p days, time-major index j S + s)

concatenated cs then ts: 4 D numbers for STORM (512 with ``small``, d = 64), 2 D for
STORM-w/o-CS (ts) and STORM-w/o-TS (cs). The official state flattens all (80, 512) tokens
(40,960 numbers); the mean keeps every token's information on average and the last token
keeps the newest, which an MLP policy can learn from in the CPU budget.

Both kinds are then standardised per column with the mean and standard deviation of the
RL training range only (`standardise`), and clipped to [-5, 5]; `training_arrays` pairs
them with the stock's adjusted closes on its real trading days for `TradingEnv`.
"""
from __future__ import annotations

import logging
import warnings

import numpy as np
import pandas as pd

from storm_bt.data.panel import Panel
from storm_bt.features.dataset import FeatureSet
from storm_bt.errors import StormBtError

log = logging.getLogger(__name__)

#: Standardised states are clipped to [-CLIP, CLIP].
CLIP = 5.0


def _ticker_index(data: FeatureSet, ticker: str) -> int:
    if ticker not in data.tickers:
        raise StormBtError(f"ticker {ticker!r} is not in the data ({', '.join(data.tickers[:12])}"
                           f"{' ...' if len(data.tickers) > 12 else ''})")
    return data.tickers.index(ticker)


def price_states(data: FeatureSet, ticker: str, start, end) -> pd.DataFrame:
    """date x F: the stock's scaled features on each date in [start, end]."""
    s = _ticker_index(data, ticker)
    idx = data.date_index(start, end)
    return pd.DataFrame(data.features[idx, s, :], index=data.dates[idx],
                        columns=list(data.feature_names))


def pool_tokens(tokens: np.ndarray) -> np.ndarray:
    """(N, L, D) -> (N, 2 D): [mean over the L tokens, the last token]."""
    return np.concatenate([tokens.mean(axis=1), tokens[:, -1, :]], axis=1)


def factor_state_from_output(out: dict, ticker_pos: list[int], n_stocks: int) -> list[np.ndarray]:
    """Pooled states (N, 4 D or 2 D) per stock position from one `StormPredictor.factors` output."""
    parts_common, per_stock = [], []
    if "z_cs" in out:
        parts_common.append(pool_tokens(np.concatenate([out["z_cs"], out["q_cs"]], axis=-1)))
    if "z_ts" in out:
        ts = np.concatenate([out["z_ts"], out["q_ts"]], axis=-1)
        n, length, width = ts.shape
        if length % n_stocks:
            raise AssertionError(f"TS tokens {length} are not a multiple of {n_stocks} stocks")
        grid = ts.reshape(n, length // n_stocks, n_stocks, width)
        per_stock = [pool_tokens(grid[:, :, s, :]) for s in ticker_pos]
    states = []
    for k in range(len(ticker_pos)):
        pieces = parts_common + ([per_stock[k]] if per_stock else [])
        states.append(np.concatenate(pieces, axis=1).astype(np.float32))
    return states


def storm_states(predictor, data: FeatureSet, tickers: list[str], start, end,
                 chunk: int = 256) -> dict[str, pd.DataFrame]:
    """ticker -> date x state: the pooled STORM factor state for every date in [start, end]
    that has a full window. The factors are computed in chunks of `chunk` dates, so memory
    stays small whatever the period."""
    pos = [_ticker_index(data, t) for t in tickers]
    idx = data.date_index(start, end)
    idx = idx[idx >= predictor.history - 1]
    if len(idx) == 0:
        raise StormBtError(f"no date in {start} .. {end} has {predictor.history} days of history")
    frames: dict[str, list[pd.DataFrame]] = {t: [] for t in tickers}
    for lo in range(0, len(idx), chunk):
        days = data.dates[idx[lo: lo + chunk]]
        out = predictor.factors(data, days[0], days[-1])
        states = factor_state_from_output(out, pos, len(data.tickers))
        for ticker, values in zip(tickers, states):
            frames[ticker].append(pd.DataFrame(values, index=out["dates"]))
    return {t: pd.concat(f) for t, f in frames.items()}


def standardise(states: pd.DataFrame, fit_start, fit_end) -> pd.DataFrame:
    """(x - mean) / std per column, the statistics from the rows dated in [fit_start, fit_end]
    (the RL training range), clipped to [-5, 5]; constant columns become 0, NaN becomes 0."""
    fit = states.loc[pd.Timestamp(fit_start): pd.Timestamp(fit_end)].to_numpy(dtype=np.float64)
    if len(fit) == 0:
        raise StormBtError(f"no state rows between {fit_start} and {fit_end} to standardise on")
    with warnings.catch_warnings():  # an all-NaN column: mean and std NaN, handled below
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(fit, axis=0)
        std = np.nanstd(fit, axis=0)
    std = np.where(np.isfinite(std) & (std > 1e-8), std, np.inf)
    values = (states.to_numpy(dtype=np.float64) - np.nan_to_num(mean)) / std
    values = np.clip(np.nan_to_num(values, nan=0.0), -CLIP, CLIP).astype(np.float32)
    return pd.DataFrame(values, index=states.index, columns=states.columns)


def training_arrays(states: pd.DataFrame, panel: Panel, ticker: str, start, end
                    ) -> tuple[np.ndarray, np.ndarray]:
    """(states (N, d) float32, adjusted closes (N,)) on the ticker's real trading days in
    [start, end] whose state is complete: what `TradingEnv` trains on."""
    s = panel.tickers.index(ticker)
    rows = (panel.dates >= pd.Timestamp(start)) & (panel.dates <= pd.Timestamp(end)) \
        & panel.mask[:, s]
    frame = states.reindex(panel.dates[rows])
    keep = frame.notna().all(axis=1).to_numpy()
    prices = panel.array("adj_close")[rows, s]
    return frame.to_numpy(dtype=np.float32)[keep], prices[keep]
