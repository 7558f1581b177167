"""Benchmark return series for tear sheets.

- ``equal-weight``: the daily-rebalanced equal-weight portfolio of the universe,
  b_t = mean over valid stocks of r_{t,s} (total returns on adj_close).
- ``PATH:TICKER`` (or ``PATH`` for a file with one ticker): daily returns of that series'
  adj_close (close where the ticker's adj_close is empty throughout; a partly empty
  adj_close is an error naming its first empty cell) from a long file such as
  ``shared/data/benchmarks_daily.csv.gz:SPY``.
"""
from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from storm_bt.data.dates import parse_date_column
from storm_bt.data.frames import index_as_columns
from storm_bt.data.panel import Panel
from storm_bt.data.validate import row_label, show_value
from storm_bt.errors import StormBtError

log = logging.getLogger(__name__)

EQUAL_WEIGHT = "equal-weight"


def equal_weight_returns(panel: Panel) -> pd.Series:
    """Daily return of the equal-weight universe (mean of the valid stocks' returns)."""
    r = panel.returns()
    ok = pd.DataFrame(panel.mask, index=panel.dates, columns=list(panel.tickers))
    ok = ok & ok.shift(1, fill_value=False)
    return r.where(ok).mean(axis=1, skipna=True).fillna(0.0).rename("equal-weight")


def load_benchmark(spec: str, panel: Panel) -> pd.Series:
    """Benchmark daily returns on the panel's calendar (see module docstring)."""
    if spec == EQUAL_WEIGHT:
        return equal_weight_returns(panel)
    path_str, _, ticker = spec.partition(":") if not Path(spec).exists() else (spec, "", "")
    path = Path(path_str)
    if not path.exists():
        raise StormBtError(f"--benchmark {spec}: no such file {path}; give 'equal-weight' or PATH[:TICKER]")
    try:
        frame = (index_as_columns(pd.read_parquet(path)) if path.name.endswith(".parquet")
                 else pd.read_csv(path))
    except Exception as exc:
        raise StormBtError(f"{path}: cannot read it ({type(exc).__name__}: {exc})") from None
    frame.columns = [str(c).strip().lower().replace(" ", "_") for c in frame.columns]
    for col in ("date", "ticker"):
        if col not in frame.columns:
            raise StormBtError(f"{path}: missing column {col!r}; a benchmark file is long: date,ticker,adj_close")
    if not ticker:
        tickers = frame["ticker"].unique()
        if len(tickers) != 1:
            raise StormBtError(f"{path}: holds {len(tickers)} tickers; name one as {path}:TICKER "
                               f"(e.g. {path}:{tickers[0]})")
        ticker = str(tickers[0])
    line_offset = None if path.name.endswith(".parquet") else 2   # a CSV's header is line 1
    frame = frame.reset_index(drop=True)
    frame["date"] = parse_date_column(frame["date"], str(path),
                                      lambda i: f"{row_label(frame, i, line_offset)}: ")
    rows = frame[frame["ticker"].astype(str) == ticker]
    if rows.empty:
        raise StormBtError(f"{path}: no rows for ticker {ticker!r} "
                           f"(tickers: {', '.join(map(str, frame['ticker'].unique()[:10]))})")
    if "adj_close" not in rows and "close" not in rows:
        raise StormBtError(f"{path}: missing column 'adj_close' (or 'close'); a benchmark file "
                           "is long: date,ticker,adj_close")
    # adj_close where the file has it for the ticker; close where its adj_close is empty
    # throughout (an index); a partly empty adj_close is refused, since mixing adjusted and
    # unadjusted prices would put a false return at every switch
    price_col = "adj_close" if "adj_close" in rows and rows["adj_close"].notna().any() \
        else "close"
    if price_col not in rows:
        raise StormBtError(f"{path}: {ticker} has empty adj_close and no close column; fill "
                           "adj_close or add close")
    if price_col == "close" and "adj_close" in rows:
        log.info("%s: %s has no adj_close; its returns are on close", path, ticker)
    values = pd.to_numeric(rows[price_col], errors="coerce")
    bad = ~(values > 0).to_numpy()   # not a number, missing, zero or negative
    if bad.any():
        i = int(bad.argmax())
        where = row_label(frame, int(rows.index[i]), line_offset)
        raise StormBtError(f"{path}: {where}: {price_col} {show_value(rows[price_col].iloc[i])} "
                           f"for {ticker} on {rows['date'].iloc[i].date()} is not a positive "
                           "price; fix or drop the row")
    prices = pd.Series(values.to_numpy(float), index=pd.DatetimeIndex(rows["date"]))
    prices = prices.sort_index()
    if prices.index.has_duplicates:
        day = prices.index[prices.index.duplicated()][0]
        raise StormBtError(f"{path}: two rows for {ticker} on {day.date()}; keep one per date")
    on_calendar = prices.reindex(panel.dates)
    if on_calendar.isna().all():
        raise StormBtError(f"{path}:{ticker} covers {prices.index.min().date()}.."
                           f"{prices.index.max().date()}, none of the data's dates")
    # NaN outside the benchmark's coverage: the caller checks its period is covered.
    return on_calendar.pct_change(fill_method=None).rename(ticker)
