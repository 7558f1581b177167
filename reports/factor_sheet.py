"""Factor tear sheets: the pictures a factor researcher looks at, one HTML page per run.

For a model's scores s_{t,i} (date x ticker) and the realised returns y_{t,i} they predict
(e.g. the next-day return; same index and columns, NaN = missing), on the dates with
enough tickers (`storm_bt.evaluation.ic`):

    IC_t        Pearson(s_t, y_t) across tickers; RankIC_t the Spearman correlation
    rolling     mean of IC_t over the trailing `window` dates (drawn once it is full)
    Q_{t,q}     mean y_{t,i} over the tickers in score quantile q on date t (1 = lowest)
    mean Q_q    average of Q_{t,q} over dates ("mean return by quantile")
    cum_{t,q}   prod_{u<=t} (1 + Q_{u,q}) - 1, each quantile an equal-weight book
                rebalanced every date, without costs
    AC_t        Spearman(s_{t-1}, s_t) over the tickers scored on both dates: the factor's
                rank autocorrelation; 1 - AC_t is its turnover
    usage_k     how often code k of a codebook was chosen (STORM); perplexity
                exp(-sum_k p_k log p_k), p_k = usage_k / sum usage, is the number of codes
                effectively used

`factor_sheet_data` computes these (pure); `write_factor_sheet` draws them as PNG files
and writes a page for one model; `write_factor_index` writes the run's page over models,
showing every model's pictures. Figures use matplotlib's Agg canvas directly (no pyplot
state); every file is written atomically.
"""
from __future__ import annotations

import html
import logging
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from reports.io import atomic_output, atomic_write_text, ensure_writable_dir
from storm_bt.errors import StormBtError
from storm_bt.evaluation.ic import QuantileReturns, daily_ic, daily_rank_ic, quantile_returns

logger = logging.getLogger(__name__)

#: Folder (under the run folder) of the per-model pages and pictures.
SHEETS_DIR = "factor_sheets"
#: The run's page over models, beside factors.md.
INDEX_NAME = "factor_sheets.html"

#: Picture file name -> caption, in page order.
PICTURES = {
    "ic.png": "Daily IC and RankIC with their rolling mean",
    "ic_hist.png": "Distribution of the daily IC and RankIC",
    "quantile_mean.png": "Mean next-day return by score quantile",
    "quantile_cumulative.png": "Cumulative return of each score quantile",
    "turnover.png": "Factor rank autocorrelation (turnover = 1 - autocorrelation)",
}
CODEBOOK_PICTURE = "codebook.png"

CodeUsage = pd.Series | np.ndarray | Sequence[float] | Mapping[str, "pd.Series | np.ndarray | Sequence[float]"]


@dataclass(frozen=True)
class FactorSheetData:
    """The numbers behind a factor tear sheet (see the module docstring)."""

    ic: pd.Series
    rank_ic: pd.Series
    window: int
    quantiles: QuantileReturns
    autocorrelation: pd.Series
    code_usage: dict[str, pd.Series] = field(default_factory=dict)

    @property
    def quantile_mean(self) -> pd.Series:
        """mean_t Q_{t,q} by quantile q."""
        return self.quantiles.mean

    @property
    def quantile_cumulative(self) -> pd.DataFrame:
        """cum_{t,q} = prod_{u<=t} (1 + Q_{u,q}) - 1."""
        return (1.0 + self.quantiles.by_quantile).cumprod() - 1.0

    def summary(self) -> dict[str, float]:
        """Means of the daily series, their IR (mean / std), and the quantile spread."""
        def ir(s: pd.Series) -> float:
            sd = float(s.std(ddof=1)) if len(s) > 1 else float("nan")
            return float(s.mean()) / sd if sd > 0 else float("nan")

        spread = self.quantiles.spread
        return {
            "IC": float(self.ic.mean()), "ICIR": ir(self.ic),
            "RankIC": float(self.rank_ic.mean()), "RankICIR": ir(self.rank_ic),
            "rank_autocorrelation": float(self.autocorrelation.mean()),
            "top_minus_bottom": float(spread.mean()) if len(spread) else float("nan"),
            "n_days": float(len(self.ic)),
        }


def _usage(code_usage: CodeUsage | None) -> dict[str, pd.Series]:
    if code_usage is None:
        return {}
    books = code_usage if isinstance(code_usage, Mapping) else {"codebook": code_usage}
    out = {}
    for name, counts in books.items():
        s = pd.Series(counts, dtype=np.float64)
        if s.empty or (s < 0).any() or not np.isfinite(s.to_numpy()).all():
            raise StormBtError(f"code usage {name!r}: give one finite count >= 0 per code")
        out[str(name)] = s.reset_index(drop=True)
    return out


def perplexity(counts: pd.Series) -> float:
    """exp(-sum_k p_k log p_k) with p_k = counts_k / sum counts; NaN when all are 0."""
    c = np.asarray(counts, dtype=np.float64)
    total = c.sum()
    if total <= 0:
        return float("nan")
    p = c[c > 0] / total
    return float(np.exp(-np.sum(p * np.log(p))))


def factor_sheet_data(
    predictions: pd.DataFrame,
    realised: pd.DataFrame,
    n_quantiles: int = 5,
    window: int = 20,
    code_usage: CodeUsage | None = None,
) -> FactorSheetData:
    """The numbers of a factor tear sheet; `realised` is reindexed to `predictions`.

    Raises:
        StormBtError: no date with enough tickers carrying both a score and a return.
    """
    if window < 1:
        raise ValueError(f"window must be at least 1, not {window}")
    pred = predictions.astype(np.float64)
    real = realised.astype(np.float64).reindex(index=pred.index, columns=pred.columns)
    ic, ric = daily_ic(pred, real), daily_rank_ic(pred, real)
    if ic.empty and ric.empty:
        raise StormBtError(
            "factor sheet: no date has 3 or more tickers with both a prediction and a "
            f"realised return ({pred.shape[0]} dates x {pred.shape[1]} tickers); check that "
            "both frames share dates and tickers")
    autocorr = daily_rank_ic(pred.shift(1), pred).rename("rank_autocorrelation")
    return FactorSheetData(ic=ic, rank_ic=ric, window=window,
                           quantiles=quantile_returns(pred, real, n_quantiles),
                           autocorrelation=autocorr, code_usage=_usage(code_usage))


# --- pictures -------------------------------------------------------------------------

def _figure(figsize: tuple[float, float], nrows: int = 1, ncols: int = 1, **kw):
    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False, **kw)
    for ax in axes.flat:
        ax.grid(alpha=0.3)
    return fig, axes


def _save(fig: Figure, path: Path, dpi: int = 100) -> Path:
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    return path


def _ic_figure(data: FactorSheetData, title: str) -> Figure:
    fig, axes = _figure((10, 5.5), 2, 1, sharex=True)
    for ax, series, color in ((axes[0, 0], data.ic, "tab:blue"),
                              (axes[1, 0], data.rank_ic, "tab:green")):
        name = "IC" if series is data.ic else "RankIC"
        ax.bar(series.index, series.to_numpy(), width=1.0, color=color, alpha=0.35,
               label=f"daily {name}")
        rolling = series.rolling(data.window).mean()
        ax.plot(rolling.index, rolling.to_numpy(), color=color, lw=1.6,
                label=f"{data.window}-day mean")
        ax.axhline(float(series.mean()), color="black", lw=0.8, ls="--",
                   label=f"mean {series.mean():.4f}")
        ax.set_ylabel(name)
        ax.legend(loc="upper left", frameon=False, fontsize=8, ncols=3)
    fig.suptitle(f"{title}: daily IC and RankIC")
    return fig


def _hist_figure(data: FactorSheetData, title: str) -> Figure:
    fig, axes = _figure((10, 3.8), 1, 2)
    for ax, series, color, name in ((axes[0, 0], data.ic, "tab:blue", "IC"),
                                    (axes[0, 1], data.rank_ic, "tab:green", "RankIC")):
        ax.hist(series.to_numpy(), bins=30, color=color, alpha=0.7)
        ax.axvline(float(series.mean()), color="black", lw=1.0, ls="--")
        ax.axvline(0.0, color="0.5", lw=0.8)
        ax.set_title(f"{name}: mean {series.mean():.4f}, std {series.std(ddof=1):.4f}, "
                     f"{len(series)} days", fontsize=9)
        ax.set_xlabel(f"daily {name}")
    axes[0, 0].set_ylabel("days")
    fig.suptitle(f"{title}: IC distribution")
    return fig


def _quantile_mean_figure(data: FactorSheetData, title: str) -> Figure:
    fig, axes = _figure((7, 3.8))
    ax = axes[0, 0]
    bps = 1e4 * data.quantile_mean
    colors = ["tab:red" if v < 0 else "tab:blue" for v in bps]
    ax.bar([str(q) for q in bps.index], bps.to_numpy(), color=colors)
    ax.axhline(0.0, color="black", lw=0.8)
    ax.set_xlabel("score quantile (1 = lowest)")
    ax.set_ylabel("mean next-day return (bps)")
    fig.suptitle(f"{title}: mean return by quantile")
    return fig


def _quantile_cumulative_figure(data: FactorSheetData, title: str) -> Figure:
    fig, axes = _figure((10, 4.2))
    ax = axes[0, 0]
    cum = data.quantile_cumulative
    cmap = matplotlib.colormaps["viridis"]
    n = max(len(cum.columns) - 1, 1)
    for i, q in enumerate(cum.columns):
        ax.plot(cum.index, cum[q].to_numpy(), color=cmap(i / n), lw=1.3, label=f"Q{q}")
    ax.axhline(0.0, color="black", lw=0.8)
    ax.yaxis.set_major_formatter(lambda y, _pos: f"{y:.0%}")
    ax.set_ylabel("cumulative return")
    ax.legend(loc="upper left", frameon=False, fontsize=8, ncols=len(cum.columns))
    fig.suptitle(f"{title}: cumulative return of each quantile (daily rebalanced, no costs)")
    return fig


def _turnover_figure(data: FactorSheetData, title: str) -> Figure:
    fig, axes = _figure((10, 3.5))
    ax = axes[0, 0]
    ac = data.autocorrelation
    ax.plot(ac.index, ac.to_numpy(), color="tab:purple", lw=0.7, alpha=0.5,
            label="day-to-day rank autocorrelation")
    rolling = ac.rolling(data.window).mean()
    ax.plot(rolling.index, rolling.to_numpy(), color="tab:purple", lw=1.6,
            label=f"{data.window}-day mean")
    ax.set_ylim(min(-0.05, float(ac.min()) - 0.05) if len(ac) else -0.05, 1.02)
    ax.set_ylabel("Spearman(s[t-1], s[t])")
    mean = float(ac.mean()) if len(ac) else float("nan")
    ax.legend(loc="lower left", frameon=False, fontsize=8, ncols=2)
    fig.suptitle(f"{title}: factor rank autocorrelation (mean {mean:.3f}, "
                 f"turnover {1 - mean:.3f})")
    return fig


def _codebook_figure(usage: dict[str, pd.Series], title: str) -> Figure:
    fig, axes = _figure((10, 2.8 * len(usage)), len(usage), 1)
    for ax, (name, counts) in zip(axes[:, 0], usage.items()):
        ax.bar(np.arange(len(counts)), counts.to_numpy(), width=1.0, color="tab:orange")
        used = int((counts > 0).sum())
        ax.set_title(f"{name}: {used} of {len(counts)} codes used, perplexity "
                     f"{perplexity(counts):.1f}", fontsize=9)
        ax.set_xlabel("code")
        ax.set_ylabel("count")
    fig.suptitle(f"{title}: codebook usage")
    return fig


# --- pages ----------------------------------------------------------------------------

def _slug(model_name: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", model_name).strip("-.")
    if not slug:
        raise StormBtError(f"model name {model_name!r}: use letters or digits")
    return slug


_CSS = ("body{font:14px/1.4 sans-serif;margin:24px;max-width:1100px}"
        "table{border-collapse:collapse;margin:8px 0 16px}"
        "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
        "th:first-child,td:first-child{text-align:left}"
        "figure{margin:12px 0 24px}img{max-width:100%}figcaption{color:#555}")


def _page(title: str, body: str) -> str:
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{_CSS}</style></head>\n<body>\n"
            f"<h1>{html.escape(title)}</h1>\n{body}</body></html>\n")


def _fmt(value: float) -> str:
    return "n/a" if not math.isfinite(value) else f"{value:.4f}"


def _summary_table(rows: Mapping[str, Mapping[str, float]]) -> str:
    keys = ("IC", "ICIR", "RankIC", "RankICIR", "rank_autocorrelation", "top_minus_bottom",
            "n_days")
    head = "".join(f"<th>{html.escape(k)}</th>" for k in ("model",) + keys)
    body = "".join(
        "<tr><td>" + html.escape(model) + "</td>"
        + "".join(f"<td>{_fmt(s[k]) if k != 'n_days' else int(s[k])}</td>" for k in keys)
        + "</tr>\n" for model, s in rows.items())
    return f"<table><tr>{head}</tr>\n{body}</table>\n"


def _quantile_table(data: FactorSheetData) -> str:
    mean = data.quantile_mean
    head = "".join(f"<th>Q{q}</th>" for q in mean.index)
    cells = "".join(f"<td>{1e4 * v:.2f}</td>" for v in mean)
    return (f"<table><tr><th>quantile</th>{head}</tr>\n"
            f"<tr><td>mean return (bps)</td>{cells}</tr></table>\n")


def _figures(pictures: Mapping[str, str], prefix: str) -> str:
    return "".join(
        f'<figure><img src="{html.escape(prefix + name)}" alt="{html.escape(caption)}">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>\n"
        for name, caption in pictures.items())


@dataclass(frozen=True)
class FactorSheet:
    """A written factor sheet: its page, its pictures (name -> caption) and its numbers."""

    model_name: str
    page: Path
    picture_dir: Path
    pictures: dict[str, str]
    data: FactorSheetData


def write_factor_sheet(
    out_dir: str | os.PathLike,
    model_name: str,
    predictions: pd.DataFrame,
    realised: pd.DataFrame,
    code_usage: CodeUsage | None = None,
    n_quantiles: int = 5,
    window: int = 20,
) -> FactorSheet:
    """Draw one model's factor pictures and its page under `out_dir`/factor_sheets/.

    Args:
        out_dir: the run folder; pictures go to factor_sheets/<model>/*.png and the page
            to factor_sheets/<model>.html.
        model_name: the model's name (the page title; its file name after sanitising).
        predictions: date x ticker scores.
        realised: date x ticker realised returns the scores predict (reindexed to
            `predictions`).
        code_usage: for STORM, the count of each code (one array, or name -> array for
            several codebooks); None draws no codebook picture.
        n_quantiles: score quantiles per date.
        window: dates in the rolling means.
    Returns:
        The written `FactorSheet` (page path, pictures, numbers).
    """
    slug = _slug(model_name)
    sheets = ensure_writable_dir(Path(out_dir) / SHEETS_DIR)
    data = factor_sheet_data(predictions, realised, n_quantiles, window, code_usage)
    draw = {
        "ic.png": _ic_figure, "ic_hist.png": _hist_figure,
        "quantile_mean.png": _quantile_mean_figure,
        "quantile_cumulative.png": _quantile_cumulative_figure,
        "turnover.png": _turnover_figure,
    }
    pictures = dict(PICTURES)
    picture_dir = sheets / slug
    for name, make in draw.items():
        _save(make(data, model_name), picture_dir / name)
    if data.code_usage:
        _save(_codebook_figure(data.code_usage, model_name), picture_dir / CODEBOOK_PICTURE)
        pictures[CODEBOOK_PICTURE] = "Codebook usage (count of each code)"
    body = (_summary_table({model_name: data.summary()}) + _quantile_table(data)
            + _figures(pictures, f"{slug}/"))
    page = atomic_write_text(sheets / f"{slug}.html",
                             _page(f"Factor tear sheet: {model_name}", body))
    # debug: a command writes into a staging folder and names the final path itself
    logger.debug("factor sheet of %s written to %s", model_name, page)
    return FactorSheet(model_name, page, picture_dir, pictures, data)


def write_factor_index(out_dir: str | os.PathLike, sheets: Sequence[FactorSheet],
                       title: str = "Factor tear sheets") -> Path:
    """The run's page `out_dir`/factor_sheets.html: a summary row and every picture of
    each model in `sheets`, with links to the per-model pages."""
    if not sheets:
        raise StormBtError("factor sheets: no model to show")
    out = Path(out_dir)
    body = _summary_table({s.model_name: s.data.summary() for s in sheets})
    for s in sheets:
        rel = s.page.relative_to(out).as_posix()
        prefix = s.picture_dir.relative_to(out).as_posix() + "/"
        body += (f'<h2 id="{html.escape(_slug(s.model_name))}">{html.escape(s.model_name)} '
                 f'<small><a href="{html.escape(rel)}">page</a></small></h2>\n'
                 + _quantile_table(s.data) + _figures(s.pictures, prefix))
    return atomic_write_text(out / INDEX_NAME, _page(title, body))
