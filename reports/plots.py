"""Static charts of a return series (matplotlib Agg, no pyplot state).

`plot_equity_drawdown` writes a PNG of two panels on one date axis:

- equity W_t = prod_{s<=t} (1 + r_s), starting from W_0 = 1 (and the benchmark's, if given);
- drawdown W_t / max_{s<=t} W_s - 1 (<= 0, the peak including W_0), as in
  `reports.metrics.drawdown_series`.

Three figures replace quantstats charts that are drawn wrong (see `reports.tearsheet`):

- `return_quantiles_figure`: box plots of the compounded return of every calendar day,
  week (to Friday), month, quarter and year, R_p = prod_{t in p} (1 + r_t) - 1, each period
  counted once (`period_returns`);
- `daily_returns_figure`: the daily returns r_t on trading days;
- `rolling_beta_figure`: beta_t = cov(r, b) / var(b) over the trailing n days, undefined
  (not drawn) until n days exist.

Figures are built on a `FigureCanvasAgg` directly, so no display, no global backend switch
and no figure left open; files are written atomically.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from reports.io import atomic_output
from reports.metrics import drawdown_series


#: quantstats' colours: benchmark, strategy, then the rest.
COLORS = ("#FEDD78", "#348DC1", "#BA516B", "#4FA487", "#9B59B6", "#613F66")

#: Calendar periods of `return_quantiles_figure`: label -> pandas period alias.
PERIODS = {"Daily": "D", "Weekly": "W-FRI", "Monthly": "M", "Quarterly": "Q", "Yearly": "Y"}


def _equity(returns: pd.Series) -> pd.Series:
    r = pd.Series(returns, dtype=np.float64).dropna()
    return (1.0 + r).cumprod()


def plot_equity_drawdown(
    returns: pd.Series,
    path: str | os.PathLike,
    benchmark: pd.Series | None = None,
    title: str | None = None,
    dpi: int = 110,
) -> Path:
    """Write an equity-curve and drawdown PNG of daily simple `returns` to `path`.

    Args:
        returns: daily simple returns indexed by date (NaN days dropped).
        path: the PNG file; its folder is created.
        benchmark: daily simple returns of a benchmark, drawn on the strategy's dates
            (dates it lacks count as 0), or None.
        title: the figure title (default: the returns' name).
    Returns:
        `path` as a Path.
    """
    r = pd.Series(returns, dtype=np.float64).dropna().sort_index()
    fig = Figure(figsize=(10, 6), layout="constrained")
    FigureCanvasAgg(fig)
    ax_eq, ax_dd = fig.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    label = str(r.name or "strategy")
    ax_eq.plot(r.index, _equity(r), color="tab:blue", lw=1.3, label=label)
    if benchmark is not None:
        b = pd.Series(benchmark, dtype=np.float64).reindex(r.index).fillna(0.0)
        ax_eq.plot(r.index, _equity(b), color="0.45", lw=1.0,
                   label=str(benchmark.name or "benchmark"))
    ax_eq.axhline(1.0, color="0.7", lw=0.8)
    ax_eq.set_ylabel("wealth (start = 1)")
    ax_eq.legend(loc="upper left", frameon=False)
    ax_eq.grid(alpha=0.3)
    dd = -drawdown_series(r)
    ax_dd.fill_between(r.index, dd.to_numpy(), 0.0, color="tab:red", alpha=0.35, lw=0)
    ax_dd.set_ylabel("drawdown")
    ax_dd.yaxis.set_major_formatter(lambda y, _pos: f"{y:.0%}")
    ax_dd.grid(alpha=0.3)
    fig.suptitle(title if title is not None else label)
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    return Path(path)


def period_returns(returns: pd.Series, freq: str) -> pd.Series:
    """Compounded return prod_{t in p} (1 + r_t) - 1 of each calendar period p holding data.

    Args:
        returns: daily simple returns indexed by date (NaN days dropped).
        freq: a pandas period alias, e.g. "W-FRI", "M", "Q", "Y".
    Returns:
        One value per period (a PeriodIndex); the first and last may be partial periods.
    """
    r = pd.Series(returns, dtype=np.float64).dropna().sort_index()
    return (1.0 + r).groupby(r.index.to_period(freq)).prod() - 1.0


def _chart(figsize: tuple[float, float], title: str) -> tuple[Figure, object]:
    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    for side in ("top", "right", "bottom", "left"):
        ax.spines[side].set_visible(False)
    fig.suptitle(title, fontweight="bold", fontsize=14)
    ax.grid(alpha=0.3)
    return fig, ax


def _percent(ax, decimals: int = 0) -> None:
    ax.yaxis.set_major_formatter(lambda y, _pos: f"{100 * y:.{decimals}f}%")


def return_quantiles_figure(returns: pd.Series, title: str | None = None,
                            figsize: tuple[float, float] = (8, 4)) -> Figure:
    """Box plots of the compounded daily, weekly, monthly, quarterly and yearly returns.

    Each calendar period counts once (`period_returns`); boxes span the quartiles, whiskers
    1.5 IQR, as in quantstats' "Return Quantiles" chart.
    """
    name = title if title is not None else str(returns.name or "Strategy")
    fig, ax = _chart(figsize, f"{name} - Return Quantiles")
    data = [period_returns(returns, freq).to_numpy() for freq in PERIODS.values()]
    box = ax.boxplot(data, tick_labels=list(PERIODS), patch_artist=True, widths=0.6,
                     medianprops={"color": "0.2"}, flierprops={"markersize": 4})
    for patch, color in zip(box["boxes"], COLORS):
        patch.set_facecolor(color)
    ax.axhline(0.0, ls="--", lw=1, color="black", zorder=0)
    _percent(ax)
    return fig


def daily_returns_figure(returns: pd.Series, figsize: tuple[float, float] = (8, 3)) -> Figure:
    """The daily returns r_t on trading days, as thin bars from 0."""
    r = pd.Series(returns, dtype=np.float64).dropna().sort_index()
    fig, ax = _chart(figsize, "Daily Returns")
    ax.vlines(r.index, 0.0, r.to_numpy(), color=COLORS[1], lw=0.8)
    ax.axhline(0.0, ls="--", lw=1, color="black")
    _percent(ax)
    fig.autofmt_xdate()
    return fig


def rolling_beta(returns: pd.Series, benchmark: pd.Series, window: int) -> pd.Series:
    """beta_t = cov(r, b) / var(b) over the trailing `window` days (NaN before)."""
    r = pd.Series(returns, dtype=np.float64)
    b = pd.Series(benchmark, dtype=np.float64).reindex(r.index)
    return (r.rolling(window).cov(b) / b.rolling(window).var()).rename(f"beta_{window}")


def rolling_beta_figure(returns: pd.Series, benchmark: pd.Series,
                        windows: tuple[int, int] = (126, 252),
                        labels: tuple[str, str] = ("6-Months", "12-Months"),
                        figsize: tuple[float, float] = (8, 3)) -> Figure:
    """Rolling beta to the benchmark over two windows; blank until a window is full."""
    r = pd.Series(returns, dtype=np.float64).dropna().sort_index()
    fig, ax = _chart(figsize, "Rolling Beta to Benchmark")
    for window, label, color in zip(windows, labels, (COLORS[1], "0.6")):
        beta = rolling_beta(r, benchmark, window)
        ax.plot(beta.index, beta.to_numpy(), lw=1.5, color=color, label=label)
    ax.set_xlim(r.index[0], r.index[-1])
    ax.axhline(0.0, ls="--", lw=1, color="black")
    ax.legend(loc="lower left", frameon=False, fontsize=9)
    fig.autofmt_xdate()
    return fig
