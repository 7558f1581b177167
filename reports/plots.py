"""Static charts of a return series (PNG, matplotlib Agg, no pyplot state).

`plot_equity_drawdown` draws two panels on one date axis:

- equity W_t = prod_{s<=t} (1 + r_s), starting from W_0 = 1 (and the benchmark's, if given);
- drawdown W_t / max_{s<=t} W_s - 1 (<= 0, the peak including W_0), as in
  `reports.metrics.drawdown_series`.

Figures are built on a `FigureCanvasAgg` directly, so no display, no global backend switch
and no figure left open; the file is written atomically.
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
