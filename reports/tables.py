"""Result tables as numbers and Markdown: the factor table and the paper's trading tables.

Pure pandas on long result frames (one row per model and seed, or per model, ticker and
seed); no model, optimizer or backtest is imported.

Cells show the mean over seeds, with the spread after '±' when there are several seeds:
the standard deviation (ddof=1) or the standard error of the mean, std / sqrt(n).

Trading tables: rows = models, columns ticker x {APY, CW, CR} and ticker x {ASR, MDD, AVO};
the last row, "Improvement(%)", compares STORM's mean with the best baseline's mean:
100 (STORM - best) / |best| for APY, CW, CR, ASR (best = the highest), 100 (best - STORM) /
|best| for MDD and AVO (best = the lowest), so a positive number always means STORM is
better. For MDD and AVO a baseline whose value is 0 (it never held the stock) is left out:
doing nothing would always "win" there and the ratio would divide by 0. "n/a" where the
improvement is undefined.
"""
from __future__ import annotations

import math
import warnings
from typing import Sequence

import numpy as np
import pandas as pd

from storm_bt.trading.rows import BASELINES, LABELS, TABLE_MODELS

#: Columns of factors.csv that are scores (valid_score: the validation selection score).
FACTOR_SCORES: tuple[str, ...] = ("IC", "ICIR", "RankIC", "RankICIR", "Q5_Q1", "valid_score")
TRADING_METRICS: tuple[str, ...] = ("APY", "CW", "CR", "ASR", "MDD", "AVO")
TABLE_1: tuple[str, ...] = ("APY", "CW", "CR")
TABLE_2: tuple[str, ...] = ("ASR", "MDD", "AVO")
LOWER_IS_BETTER = frozenset({"MDD", "AVO"})
IMPROVEMENT = "Improvement(%)"
#: How a trading metric is shown: (scale, decimals, suffix).
DISPLAY = {"APY": (100.0, 2, "%"), "CW": (1.0, 4, ""), "CR": (1.0, 3, ""),
           "ASR": (1.0, 3, ""), "MDD": (100.0, 2, "%"), "AVO": (100.0, 2, "%")}


def mean_cell(values: Sequence[float], decimals: int = 4, scale: float = 1.0, suffix: str = "",
              spread: str = "std") -> str:
    """'mean ± spread' of the finite values (spread 'std' or 'se'); the mean alone for one value."""
    v = np.asarray(values, dtype=float) * scale
    n_given = v.size
    v = v[np.isfinite(v)]
    if v.size == 0:
        return "nan"
    text = f"{v.mean():.{decimals}f}"
    if n_given > 1:
        sd = v.std(ddof=1) if v.size > 1 else 0.0
        text += f" ± {sd / math.sqrt(v.size) if spread == 'se' else sd:.{decimals}f}"
    return text + suffix


def markdown(frame: pd.DataFrame) -> str:
    """A frame as Markdown; (ticker, metric) column pairs become 'TICKER METRIC' headers."""
    flat = frame.copy()
    if isinstance(flat.columns, pd.MultiIndex):
        flat.columns = [" ".join(map(str, c)) for c in frame.columns]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return flat.to_markdown(disable_numparse=True)


# ---------------------------------------------------------------------- factors
#: The factor summary shows Q5_Q1 (a daily return spread, often a few 1e-4) in basis points
#: a day, under this header; factors.csv keeps the fraction.
Q5_Q1_SHOWN = "Q5_Q1 (bp/day)"


def factor_summary(table: pd.DataFrame, spread: str = "std") -> pd.DataFrame:
    """Per model (in the table's order): 'mean ± spread' of each score over seeds, and the
    number of seeds; Q5_Q1 in basis points a day (`Q5_Q1_SHOWN`), so that its spread is not
    rounded to 0.0000."""
    scores = [col for col in FACTOR_SCORES
              if col in table and np.isfinite(table[col].astype(float)).any()]
    rows = {}
    for model, group in table.groupby("model", sort=False):
        row = {}
        for col in scores:
            shown, decimals, scale = (Q5_Q1_SHOWN, 2, 1e4) if col == "Q5_Q1" else (col, 4, 1.0)
            row[shown] = (mean_cell(group[col], decimals, scale=scale, spread=spread)
                          if np.isfinite(group[col].astype(float)).any() else "—")
        row["seeds"] = len(group)
        rows[model] = row
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("model")


def seed_pair_table(pairs: pd.DataFrame) -> pd.DataFrame:
    """`storm_bt.experiments.factors.seed_pairs` for display: 'mean ± se' cells with the
    seeds ahead, '—' where a model has no such score."""
    def cell(mean: float, se: float, ahead: str) -> str:
        if not np.isfinite(mean):
            return "—"
        spread = f" ± {se:.4f}" if np.isfinite(se) else ""
        return f"{mean:+.4f}{spread} ({ahead} ahead)"

    rows = {row.model: {"vs": row.vs, "seeds": row.seeds,
                        "valid_score": cell(row.valid_diff, row.valid_se, row.valid_ahead),
                        "test RankIC": cell(row.RankIC_diff, row.RankIC_se, row.RankIC_ahead)}
            for row in pairs.itertuples()}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("model")


def ensemble_display(ensembles: pd.DataFrame) -> pd.DataFrame:
    """`storm_bt.experiments.ensemble.ensemble_table` for display: one row per model."""
    def signed(value: float, digits: int = 4) -> str:
        return f"{value:+.{digits}f}" if np.isfinite(value) else "—"

    rows = {}
    for row in ensembles.itertuples():
        members = (f"{row.valid_RankIC_members:.4f} ± {row.valid_RankIC_members_se:.4f}"
                   if np.isfinite(row.valid_RankIC_members) else "—")
        rows[row.model] = {"seeds": row.seeds, "valid members": members,
                           "valid ensemble": signed(row.valid_RankIC),
                           "valid gain": signed(row.valid_gain),
                           "IC": f"{row.IC:.4f}", "ICIR": f"{row.ICIR:.4f}",
                           "RankIC": f"{row.RankIC:.4f}", "RankICIR": f"{row.RankICIR:.4f}",
                           "RankIC vs STORM": signed(row.RankIC_vs_ref),
                           "t_NW": signed(row.t_vs_ref, 2)}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("model")


# ---------------------------------------------------------------------- trading
def improvement(means: pd.DataFrame, storm: str = "storm",
                baselines: tuple[str, ...] = BASELINES) -> pd.Series:
    """Improvement(%) of `storm` over the best baseline per (ticker, metric) column of
    `means` (rows = models); NaN where STORM or every baseline is missing."""
    base = [m for m in baselines if m in means.index]
    out = pd.Series(np.nan, index=means.columns, name=IMPROVEMENT)
    if storm not in means.index or not base:
        return out
    for col in means.columns:
        metric = col[1] if isinstance(col, tuple) else col
        values = means.loc[base, col].astype(float)
        if metric in LOWER_IS_BETTER:  # a book that never held the stock has no risk to beat
            values = values[values > 0]
        s = float(means.loc[storm, col])
        if values.isna().all() or not np.isfinite(s):
            continue
        best = values.min() if metric in LOWER_IS_BETTER else values.max()
        if best == 0 or not np.isfinite(best):
            continue
        diff = (best - s) if metric in LOWER_IS_BETTER else (s - best)
        out[col] = 100.0 * diff / abs(best)
    return out


def trading_summary(table: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(table 1: ticker x {APY, CW, CR}, table 2: ticker x {ASR, MDD, AVO}, means) of a long
    trading table (model, ticker, seed, APY, CW, CR, ASR, MDD, AVO as fractions).

    The display tables hold strings (mean ± std over seeds, in % for APY, MDD, AVO) with a
    last row Improvement(%); `means` is the numeric model x (ticker, metric) frame.
    """
    models = [m for m in TABLE_MODELS if m in set(table["model"])]
    tickers = list(dict.fromkeys(table["ticker"]))
    grouped = table.groupby(["model", "ticker"], sort=False)
    means = grouped[list(TRADING_METRICS)].mean().unstack("ticker")
    means = means.reorder_levels([1, 0], axis=1)
    columns = pd.MultiIndex.from_tuples([(t, m) for t in tickers for m in TRADING_METRICS],
                                        names=["ticker", "metric"])
    means = means.reindex(index=models, columns=columns)
    imp = improvement(means)
    tables = []
    for metrics in (TABLE_1, TABLE_2):
        cols = [(t, m) for t in tickers for m in metrics]
        rows = {}
        for model in models:
            row = {}
            for t, m in cols:
                vals = table.loc[(table["model"] == model) & (table["ticker"] == t), m]
                scale, decimals, suffix = DISPLAY[m]
                row[(t, m)] = mean_cell(vals, decimals, scale, suffix) if len(vals) else ""
            rows[LABELS[model]] = row
        rows[IMPROVEMENT] = {c: ("n/a" if not np.isfinite(imp[c]) else f"{imp[c]:+.2f}")
                             for c in cols}
        frame = pd.DataFrame.from_dict(rows, orient="index")
        frame.columns = pd.MultiIndex.from_tuples(cols, names=["ticker", "metric"])
        frame.index.name = "model"
        tables.append(frame)
    return tables[0], tables[1], means


def trading_markdown(table: pd.DataFrame) -> str:
    """Both trading tables of a long `table` (see `trading_summary`) as Markdown sections."""
    first, second, _ = trading_summary(table)
    return (f"## APY, CW, CR\n\n{markdown(first)}\n\n"
            f"## ASR, MDD, AVO\n\n{markdown(second)}\n")
