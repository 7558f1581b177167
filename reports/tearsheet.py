"""HTML tear sheet of a daily return series, drawn by quantstats, offline and quietly.

`write_tearsheet` hands quantstats (tested with 0.0.86 on pandas 3.1) clean inputs and
shields the caller from its side effects:

- The benchmark is always a return Series reindexed to the strategy's dates. A ticker string
  would make quantstats download prices, and a Series on other dates goes through
  quantstats' own re-alignment, which back-fills prices (a look-ahead) and sets the first
  return to 0.
- `match_dates=False`: quantstats would otherwise cut both series to start at the later
  first non-zero return, so a strategy flat during a warm-up would be reported on a
  shorter period than our own metrics.
- A constant strategy (e.g. never invested) is written without the benchmark: quantstats
  fits R^2 with `scipy.stats.linregress`, which raises on a constant series.
- quantstats sets matplotlib's font to Arial and a seaborn theme when imported; both are
  applied only inside the call (`matplotlib.rc_context`), so other plots are untouched. Its
  "findfont: Font family 'Arial' not found" log lines, its pandas/matplotlib deprecation
  warnings and the figures it leaves open are silenced or closed.
- The file is written to a temporary name beside `path` and moved into place, so a
  failure leaves no partial file.

What quantstats 0.0.86 draws wrong, and what is done about it (each checked against the
run's own numbers, see tests/reports/test_tearsheet_browser.py):

- "EOY Returns vs Benchmark" drew each year one year late. pandas 3 draws a bar plot of a
  DatetimeIndex on a time axis (bar i at the period ordinal of its date, e.g. 50 for 2020,
  with date ticks placed by pandas, the first one a period *before* the first bar), while
  quantstats then relabels the ticks with `set_xticklabels(df.index.year)`, assuming one
  tick per bar at 0, 1, 2, ... as in pandas 2: 2020's bar sat under the label "2021".
  Fixed at the cause: pandas' `x_compat` plot option is set during the call, which gives
  the categorical bar positions quantstats expects (this bar chart is the only pandas plot
  quantstats draws; its other charts call matplotlib directly).
- "Return Quantiles" assigned weekly/monthly/quarterly/yearly returns (labelled at the
  period's last calendar day) to a frame indexed by trading days and forward-filled them:
  a period ending on a weekend vanished (the last year, most months) and each value was
  weighted by the days until the next period end. Replaced by
  `reports.plots.return_quantiles_figure` (every period once).
- "Daily Returns (Cumulative Sum)" resampled a cumulative sum to calendar days with `sum`,
  so the line fell to 0 on every weekend and holiday. Replaced by the daily returns
  (`reports.plots.daily_returns_figure`).
- "Rolling Beta to Benchmark" drew the 6-month beta as 0 (`fillna(0)`) until 126 days
  exist. Replaced by `reports.plots.rolling_beta_figure` (undefined beta is not drawn).
- The page called an undefined `save()` on load (a JavaScript error) and fetched its
  favicon from the web; both are removed from the template. Chart text is written as SVG
  text (`svg.fonttype: none`), not outlines, so labels and values can be read and searched.
"""
from __future__ import annotations

import contextlib
import logging
import io
import os
import re
import sys
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import matplotlib
import numpy as np
import pandas as pd

from matplotlib.figure import Figure

from reports.io import atomic_output, ensure_writable_dir
from reports.plots import daily_returns_figure, return_quantiles_figure, rolling_beta_figure
from storm_bt.errors import StormBtError

logger = logging.getLogger(__name__)

#: matplotlib settings quantstats applies when imported, replayed inside each call.
_QS_RC: dict[str, Any] | None = None

#: quantstats charts drawn by `reports.plots` instead (template placeholder names).
REPLACED_CHARTS = ("daily_returns", "rolling_beta", "returns_dist")

#: Rolling windows of quantstats' tear sheet at 252 days a year: half a year, a year.
_BETA_WINDOWS = (126, 252)


def _quantstats() -> ModuleType:
    """Import quantstats once, keeping its import-time matplotlib style out of rcParams."""
    global _QS_RC
    if "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")  # before pyplot is imported: no display needed
    if _QS_RC is None:
        with _quiet(), matplotlib.rc_context():
            import quantstats
            _QS_RC = {k: v for k, v in matplotlib.rcParams.items() if k != "backend"}
    import quantstats

    return quantstats


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence warnings and matplotlib's font-fallback log lines; close figures opened."""
    font_log = logging.getLogger("matplotlib.font_manager")
    level = font_log.level
    font_log.setLevel(logging.ERROR)
    plt = sys.modules.get("matplotlib.pyplot")
    before = set(plt.get_fignums()) if plt else set()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        font_log.setLevel(level)
        plt = sys.modules.get("matplotlib.pyplot")
        if plt is not None:
            for num in set(plt.get_fignums()) - before:
                plt.close(num)


@contextlib.contextmanager
def _qs_style() -> Iterator[None]:
    """quantstats' matplotlib style, SVG text as text, pandas bar plots on 0..n-1."""
    with matplotlib.rc_context({**(_QS_RC or {}), "svg.fonttype": "none"}), \
            pd.plotting.plot_params.use("x_compat", True):
        yield


def _marker(name: str) -> str:
    return f"<!--storm_bt:{name}-->"


def _template(qs: ModuleType) -> str:
    """quantstats' report template without its load-time error, web favicon and the
    charts it draws wrong (left as markers for ours)."""
    tpl = (Path(qs.__file__).parent / "report.html").read_text(encoding="utf-8")
    tpl = tpl.replace(' onload="save()"', "")
    tpl = re.sub(r'<link rel="shortcut icon"[^>]*>\s*', "", tpl)
    for name in REPLACED_CHARTS:
        if "{{%s}}" % name not in tpl:  # another quantstats: keep its chart, say so
            logger.warning("quantstats template has no {{%s}}; its chart is kept", name)
        tpl = tpl.replace("{{%s}}" % name, _marker(name))
    return tpl


def _svg(fig: Figure) -> str:
    """The figure as an inline <svg> element (no XML prolog)."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg")
    text = buf.getvalue()
    return text[text.index("<svg"):]


def _our_charts(r: pd.Series, b: pd.Series | None, name: str) -> dict[str, str]:
    """The replacement charts as inline SVG, by placeholder name."""
    charts = {
        "daily_returns": _svg(daily_returns_figure(r)),
        "returns_dist": _svg(return_quantiles_figure(r, title=name)),
        "rolling_beta": "" if b is None else _svg(rolling_beta_figure(r, b, _BETA_WINDOWS)),
    }
    return {k: charts[k] for k in REPLACED_CHARTS}


def _who(series: pd.Series, what: str) -> str:
    """'returns' or "returns 'name'" for messages."""
    return what if series.name is None else f"{what} {series.name!r}"


def _as_returns(returns: pd.Series, what: str = "returns") -> pd.Series:
    """A float Series on a sorted, unique, tz-naive DatetimeIndex, NaN dropped."""
    if not isinstance(returns, pd.Series):
        raise TypeError(f"{what} must be a pandas Series, not {type(returns).__name__}")
    r = returns.astype(np.float64)
    if not isinstance(r.index, pd.DatetimeIndex):
        try:
            if pd.api.types.is_numeric_dtype(r.index.dtype):
                raise TypeError  # numbers would silently become 1970 dates
            r.index = pd.DatetimeIndex(pd.to_datetime(r.index))
        except (TypeError, ValueError):
            raise StormBtError(f"{_who(returns, what)}: the index must be dates, not "
                               f"{r.index.dtype} values such as {r.index[:1].tolist()}") from None
    if r.index.tz is not None:
        r.index = r.index.tz_localize(None)
    if r.index.has_duplicates:
        dup = r.index[r.index.duplicated()][0]
        raise StormBtError(f"{_who(returns, what)}: date {dup.date()} appears twice")
    return r.sort_index().dropna()


def _align_benchmark(benchmark: pd.Series, dates: pd.DatetimeIndex) -> pd.Series:
    """The benchmark's returns on exactly `dates`; missing dates count as 0 (logged)."""
    if isinstance(benchmark, str):
        raise StormBtError(
            f"benchmark {benchmark!r}: pass a return Series, not a ticker (quantstats would "
            "download it); e.g. storm_bt.data.benchmark.load_benchmark(spec, panel)")
    if not isinstance(benchmark, pd.Series):
        raise TypeError(f"benchmark must be a pandas Series, not {type(benchmark).__name__}")
    b = _as_returns(benchmark, "benchmark").reindex(dates)
    missing = int(b.isna().sum())
    if missing == len(b):
        raise StormBtError(
            f"{_who(benchmark, 'benchmark')} has no return on any date of the strategy "
            f"({dates[0].date()}..{dates[-1].date()}); choose a benchmark covering that period")
    if missing:
        first = b.index[b.isna()][0].date()
        logger.warning("benchmark %r lacks %d of %d dates (first %s); they count as 0",
                       benchmark.name, missing, len(b), first)
    return b.fillna(0.0)


def write_tearsheet(
    returns: pd.Series,
    benchmark: pd.Series | None,
    path: str | os.PathLike,
    title: str = "storm_bt backtest",
) -> Path:
    """Write a quantstats HTML tear sheet of daily simple `returns` to `path`.

    Args:
        returns: daily simple returns indexed by date; NaN days are dropped. Its name (or
            "Strategy") labels the strategy column.
        benchmark: daily simple returns of a benchmark (any dates; reindexed to `returns`,
            dates it lacks count as 0 with a logged warning), or None.
        path: the HTML file; its folder is created.
        title: the report's heading.
    Returns:
        `path` as a Path.
    Raises:
        StormBtError: no returns, bad dates, a benchmark string or one covering none of
            the dates, or an unwritable folder.
    """
    r = _as_returns(returns)
    if r.empty:
        raise StormBtError(f"{_who(returns, 'returns')}: nothing to report (empty or all NaN)")
    b = None if benchmark is None else _align_benchmark(benchmark, r.index)
    if b is not None and np.ptp(r.to_numpy()) == 0.0:
        logger.warning("returns %r are constant: the tear sheet omits the benchmark "
                       "(quantstats cannot regress on a constant series)", returns.name)
        b = None
    names: dict[str, str] = {"strategy_title": str(returns.name or "Strategy")}
    if b is not None:
        names["benchmark_title"] = str(benchmark.name or "Benchmark")
    dest = Path(path)
    ensure_writable_dir(dest.parent)  # fail before the slow quantstats import
    qs = _quantstats()
    with atomic_output(dest) as tmp, _quiet(), _qs_style(), \
            tempfile.TemporaryDirectory(prefix="storm_bt-tearsheet-") as scratch:
        template = Path(scratch) / "report.html"
        template.write_text(_template(qs), encoding="utf-8")
        qs.reports.html(
            r, benchmark=b, output=str(tmp), title=title, rf=0.0, compounded=True,
            periods_per_year=252, match_dates=False, template_path=str(template), **names,
        )
        html = Path(tmp).read_text(encoding="utf-8")
        for name, svg in _our_charts(r, b, names["strategy_title"]).items():
            html = html.replace(_marker(name), svg)
        Path(tmp).write_text(html, encoding="utf-8")
    # debug: a command writes into a staging folder and names the final path itself
    logger.debug("tear sheet written to %s", dest)
    return dest
