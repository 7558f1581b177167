"""Does the day's market state re-weight stock signals usefully? The premise of the CS branch.

STORM's CS branch sees each day's cross-section as a whole. On daily RankIC a day-level
input can only help by changing how the stock-level signals are weighed against each other
that day (scaling every stock's score by the same factor leaves the ranking unchanged). This
script asks whether the price panel holds such information at all, with models simple enough
to read, on the validation period only.

Stock signals x_{t,s} (K = 7), each a standardised cross-sectional rank on date t
(`storm_bt.features.characteristics.cross_sectional_ranks`), from returns r up to t:

    dollar_volume, volatility, momentum (64 days), reversal (5 days)   (the characteristics)
    r_t (1-day return), sum r_{t-20..t} (21 days), sum r_{t-251..t-21} (12-1 month momentum)

Day state s_t (M = 7), from the same returns up to t, standardised with the training days'
mean and standard deviation:

    market return m_t = mean_s r_{t,s} over 1, 5 and 21 days,
    log std of m over 21 days (market volatility),
    log std_s r_{t,s} (dispersion) and its 21-day mean,
    var_21(m) / mean_s var_21(r_s) (how much of a stock's variance the market explains).

Label: the next-day return r_{t+1,s}, z-scored across the stocks of date t. Four models,
fitted on the training days only (2008-04-01 .. 2019-03-31, every label realised inside):

    constant   y = x'b                        pooled ridge regression
    state      y = x'b + sum_m s_m x'g_m      the same with every signal x state interaction
    trees      LightGBM on x
    trees+state LightGBM on (x, s)

The ridge penalty and the number of trees are chosen on an inner split of the training
period (fit before 2017-04-01, score 2017-04-01 .. 2019-03-31 by mean daily RankIC for the
ridge and by l2 for the trees), then refitted on every training day. Output: each model's
mean daily validation RankIC with its Newey-West standard error, and each state model minus
its constant twin paired by day.

A second table isolates the one state variable that holds up: the market's return of the
day, m_t, read through the four characteristics alone (the read of STORM's
``characteristics_read="state"``), y = c'b + m_t c'g against y = c'b (ridge, lambda fixed at
1e-2), in yearly walk-forward blocks inside the training period (each April-to-March year
from 2010, fitted on the training days before it) and on validation (fitted on every
training day): each block's RankIC difference ± Newey-West se, and the blocks' mean ± its
standard error over the years. The test period is not read.

    python benchmarks/state_conditioning.py --data ../shared/data/sp500_daily.parquet --universe all
"""
from __future__ import annotations

import argparse
import logging
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from bench_training import DEFAULT_DATA, load_universe, paper_split

log = logging.getLogger("state_conditioning")

SIGNAL_NAMES = ("dollar_volume", "volatility", "momentum", "reversal",
                "return_1d", "return_21d", "momentum_12_1")
STATE_NAMES = ("market_1d", "market_5d", "market_21d", "market_vol_21d", "dispersion_1d",
               "dispersion_21d", "market_share_21d")
#: the inner split of the training period that chooses the ridge penalty and the trees
INNER_START = pd.Timestamp("2017-04-01")
RIDGE_GRID = (0.0, 1e-4, 1e-3, 1e-2, 1e-1)
#: the characteristics among `SIGNAL_NAMES`, and the market's day return among `STATE_NAMES`
CHARACTERISTICS = slice(0, 4)
MARKET_DAY = 0
FIRST_BLOCK_YEAR = 2010


def _rolling_sum(x: np.ndarray, k: int, lag: int = 0) -> np.ndarray:
    """(D, ...) the sum of x over t-lag-k+1 .. t-lag (NaN where one of them is missing)."""
    out = pd.DataFrame(x.reshape(len(x), -1)).rolling(k).sum().shift(lag).to_numpy()
    return out.reshape(x.shape)


def market_state(returns: np.ndarray) -> np.ndarray:
    """(D, M) the day state of `STATE_NAMES` from ``returns`` (D, S), r_{t,s} the return
    that ends on date t (NaN where unknown). Row t reads rows up to t only."""
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        market = np.nanmean(returns, axis=1)
        dispersion = np.log(np.nanstd(returns, axis=1))
        m = pd.Series(market)
        stock_var = pd.DataFrame(returns).rolling(21).var().to_numpy()
        share = m.rolling(21).var().to_numpy() / np.nanmean(stock_var, axis=1)
        state = np.column_stack([
            market, _rolling_sum(market, 5), _rolling_sum(market, 21),
            np.log(m.rolling(21).std().to_numpy()),
            dispersion, pd.Series(dispersion).rolling(21).mean().to_numpy(), share])
    return np.where(np.isfinite(state), state, np.nan)


def stock_signals(panel) -> np.ndarray:
    """(D, S, K) float32 standardised cross-sectional ranks of `SIGNAL_NAMES` (0 where a
    stock has no value on the date); row t reads the panel up to t only."""
    from storm_bt.features.characteristics import cross_sectional_ranks, raw_characteristics

    returns = panel.returns().to_numpy()
    extra = np.stack([returns, _rolling_sum(returns, 21), _rolling_sum(returns, 231, lag=21)],
                     axis=-1)
    values = np.concatenate([raw_characteristics(panel), extra], axis=-1)
    return cross_sectional_ranks(values, panel.mask)


def standardise_state(state: np.ndarray, train_days: np.ndarray) -> np.ndarray:
    """``state`` (D, M) standardised with the mean and std of the training days' rows (NaN,
    a day without a state, becomes 0: the training mean)."""
    mean = np.nanmean(state[train_days], axis=0)
    std = np.nanstd(state[train_days], axis=0)
    out = (state - mean) / np.where(std > 0, std, 1.0)
    return np.nan_to_num(out, nan=0.0)


def design(signals: np.ndarray, state: np.ndarray | None) -> np.ndarray:
    """The regressors of one date: x (S, K), or with the day's ``state`` (M,)
    [x, s_1 x, .., s_M x] (S, K + K M)."""
    if state is None:
        return signals
    return np.concatenate([signals] + [signals * v for v in state], axis=1)


def next_day_labels(returns: np.ndarray) -> np.ndarray:
    """(D, S): y_{t,s}, the return of t+1 z-scored across date t's stocks (NaN where
    unknown)."""
    from storm_bt.evaluation.ic import zscore_rows

    nxt = np.full_like(returns, np.nan)
    nxt[:-1] = returns[1:]
    return zscore_rows(nxt, flat=np.nan)


def fit_ridge(signals: np.ndarray, labels: np.ndarray, state: np.ndarray | None,
              days: np.ndarray, penalties=RIDGE_GRID) -> dict[float, np.ndarray]:
    """Pooled ridge coefficients over the (date, stock) rows of ``days`` with a finite label:
    beta = (Z'Z + lambda n I)^-1 Z'y, n the number of rows, for each lambda of
    ``penalties``."""
    width = signals.shape[2] * (1 + (state.shape[1] if state is not None else 0))
    gram, moment, n = np.zeros((width, width)), np.zeros(width), 0
    for t in days:
        rows = np.isfinite(labels[t])
        z = design(signals[t, rows].astype(np.float64),
                   None if state is None else state[t])
        gram += z.T @ z
        moment += z.T @ labels[t, rows]
        n += int(rows.sum())
    return {lam: np.linalg.solve(gram + lam * n * np.eye(width), moment) for lam in penalties}


def ridge_scores(signals: np.ndarray, state: np.ndarray | None, beta: np.ndarray,
                 days: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """(len(days), S) scores z'beta, NaN where the stock has no row on the date."""
    out = np.full((len(days), signals.shape[1]), np.nan)
    for i, t in enumerate(days):
        score = design(signals[t].astype(np.float64), None if state is None else state[t]) @ beta
        out[i] = np.where(valid[t], score, np.nan)
    return out


def daily_ic(scores: np.ndarray, labels: np.ndarray, days: np.ndarray, dates) -> pd.Series:
    """Daily RankIC of ``scores`` (len(days), S) against ``labels`` on ``days``."""
    from storm_bt.evaluation.ic import daily_rank_ic

    index = dates[days]
    return daily_rank_ic(pd.DataFrame(scores, index=index), pd.DataFrame(labels[days],
                                                                        index=index))


def tree_inputs(x: np.ndarray, state_row: np.ndarray | None) -> np.ndarray:
    """A tree's inputs for one date's stocks: x (n, K), or (x, s_t) (n, K + M) with the
    day's state beside every stock."""
    if state_row is None:
        return x
    return np.concatenate([x, np.broadcast_to(state_row, (len(x), len(state_row)))], axis=1)


def tree_rows(signals, state, labels, days):
    """(features, target) rows of ``days`` with a finite label: x, or (x, s) with state."""
    feats, target = [], []
    for t in days:
        rows = np.isfinite(labels[t])
        feats.append(tree_inputs(signals[t, rows], None if state is None else state[t]))
        target.append(labels[t, rows])
    return np.concatenate(feats).astype(np.float32), np.concatenate(target)


def fit_trees(signals, state, labels, inner_fit, inner_score, train_days, seed: int = 0):
    """LightGBM (l2) with its rounds chosen by early stopping on the inner split, refitted on
    every training day; returns the booster."""
    import lightgbm as lgb

    params = {"objective": "regression", "learning_rate": 0.05, "num_leaves": 31,
              "min_data_in_leaf": 2000, "num_threads": 2, "deterministic": True,
              "force_row_wise": True, "seed": seed, "verbose": -1}
    x_fit, y_fit = tree_rows(signals, state, labels, inner_fit)
    x_score, y_score = tree_rows(signals, state, labels, inner_score)
    probe = lgb.train(params, lgb.Dataset(x_fit, y_fit), num_boost_round=500,
                      valid_sets=[lgb.Dataset(x_score, y_score)],
                      callbacks=[lgb.early_stopping(50, verbose=False)])
    rounds = max(int(probe.best_iteration), 1)
    x_all, y_all = tree_rows(signals, state, labels, train_days)
    return lgb.train(params, lgb.Dataset(x_all, y_all), num_boost_round=rounds), rounds


def tree_scores(booster, signals, state, days, valid) -> np.ndarray:
    """(len(days), S) the booster's scores, NaN where the stock has no row on the date."""
    out = np.full((len(days), signals.shape[1]), np.nan)
    for i, t in enumerate(days):
        x = tree_inputs(signals[t], None if state is None else state[t])
        out[i] = np.where(valid[t], booster.predict(x.astype(np.float32)), np.nan)
    return out


def labelled_days(dates: pd.DatetimeIndex, labels: np.ndarray, start, end,
                  first: int) -> np.ndarray:
    """Indices t >= first with start <= date_t and date_{t+1} <= end, some label finite."""
    t = np.arange(first, len(dates) - 1)
    keep = (dates[t] >= pd.Timestamp(start)) & (dates[t + 1] <= pd.Timestamp(end))
    t = t[keep]
    return t[np.isfinite(labels[t]).any(axis=1)]


def market_day_blocks(signals: np.ndarray, state: np.ndarray, labels: np.ndarray,
                      valid: np.ndarray, dates: pd.DatetimeIndex, split, first: int,
                      lam: float = 1e-2) -> pd.DataFrame:
    """The characteristics read with and without the market's day return (see the module's
    docstring), per yearly walk-forward block of the training period and on validation:
    one row per block with both mean RankICs and their daily difference ± Newey-West se.
    (``state`` is standardised over every training day; for a block inside the training
    period that only rescales and shifts m_t, which the fit absorbs up to its small
    penalty.)"""
    from storm_bt.evaluation.significance import newey_west_se

    chars, market = signals[:, :, CHARACTERISTICS], state[:, [MARKET_DAY]]
    blocks = [(pd.Timestamp(f"{y}-04-01"), pd.Timestamp(f"{y + 1}-03-31"))
              for y in range(FIRST_BLOCK_YEAR, split.valid[0].year)
              if pd.Timestamp(f"{y + 1}-03-31") <= split.train[1]]
    rows = []
    for start, end in blocks + [tuple(split.valid)]:
        fit = labelled_days(dates, labels, split.train[0],
                            min(start - pd.Timedelta(days=1), split.train[1]), first)
        days = labelled_days(dates, labels, start, end, first)
        ics = [daily_ic(ridge_scores(chars, s, fit_ridge(chars, labels, s, fit, (lam,))[lam],
                                     days, valid), labels, days, dates)
               for s in (None, market)]
        diff = (ics[1] - ics[0]).dropna()
        rows.append({"block": f"{start.date()} .. {end.date()}",
                     "set": "valid" if start == split.valid[0] else "train",
                     "c'b": ics[0].mean(), "c'b + m c'g": ics[1].mean(),
                     "difference": diff.mean(), "NW se": newey_west_se(diff.to_numpy())})
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    from storm_bt.evaluation.significance import newey_west_se

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--universe", choices=["dj30", "all"], default="dj30")
    parser.add_argument("--no-trees", action="store_true", help="the ridge models only")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if not args.data.exists():
        log.info("SKIP state_conditioning: %s not found (set STORM_BT_SHARED_DATA or --data)",
                 args.data)
        return 0
    panel = load_universe(args.data, args.universe)
    split = paper_split(panel)
    returns = panel.returns().to_numpy()
    labels = next_day_labels(returns)
    signals = stock_signals(panel)
    first = 252                                   # a year of history for every signal
    train = labelled_days(panel.dates, labels, split.train[0], split.train[1], first)
    inner_fit = labelled_days(panel.dates, labels, split.train[0],
                              INNER_START - pd.Timedelta(days=1), first)
    inner_score = labelled_days(panel.dates, labels, INNER_START, split.train[1], first)
    valid = labelled_days(panel.dates, labels, split.valid[0], split.valid[1], first)
    state = standardise_state(market_state(returns), train)

    daily, chosen = {}, {}
    for name, s in (("constant", None), ("state", state)):
        inner = fit_ridge(signals, labels, s, inner_fit)
        picks = {lam: daily_ic(ridge_scores(signals, s, b, inner_score, panel.mask), labels,
                               inner_score, panel.dates).mean() for lam, b in inner.items()}
        lam = max(picks, key=picks.get)
        beta = fit_ridge(signals, labels, s, train, penalties=(lam,))[lam]
        daily[name] = daily_ic(ridge_scores(signals, s, beta, valid, panel.mask), labels,
                               valid, panel.dates)
        chosen[name] = f"lambda {lam:g}"
    if not args.no_trees:
        for name, s in (("trees", None), ("trees+state", state)):
            booster, rounds = fit_trees(signals, s, labels, inner_fit, inner_score, train)
            daily[name] = daily_ic(tree_scores(booster, signals, s, valid, panel.mask), labels,
                                   valid, panel.dates)
            chosen[name] = f"{rounds} trees"
    rows = []
    for name, ic in daily.items():
        twin = {"state": "constant", "trees+state": "trees"}.get(name)
        diff = (ic - daily[twin]).dropna() if twin else None
        rows.append({"model": name, "chosen on inner split": chosen[name],
                     "valid RankIC": ic.mean(), "NW se": newey_west_se(ic.to_numpy()),
                     "minus constant twin": diff.mean() if twin else np.nan,
                     "its NW se": newey_west_se(diff.to_numpy()) if twin else np.nan,
                     "t": diff.mean() / newey_west_se(diff.to_numpy()) if twin else np.nan})
    log.info("%s (%d stocks), %d training days, validation %s .. %s (%d days)\n%s",
             args.data.name, len(panel.tickers), len(train), panel.dates[valid[0]].date(),
             panel.dates[valid[-1]].date(), len(valid),
             pd.DataFrame(rows).round(4).to_string(index=False))
    blocks = market_day_blocks(signals, state, labels, panel.mask, panel.dates, split, first)
    train_blocks = blocks.loc[blocks["set"] == "train", "difference"]
    log.info("The characteristics with the market's day return (ridge, lambda 0.01), yearly "
             "walk-forward blocks and validation\n%s\ntraining blocks: mean difference "
             "%+.4f ± %.4f over %d years (%d up)", blocks.round(4).to_string(index=False),
             train_blocks.mean(), train_blocks.std(ddof=1) / np.sqrt(len(train_blocks)),
             len(train_blocks), int((train_blocks > 0).sum()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
