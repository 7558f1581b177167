"""A user's pandas DataFrame as a validated long price table.

Three layouts are read:
- long: a ``ticker`` column, a ``date`` column (or a date index), and the price fields;
  a row index named (date, ticker), as pandas keeps a panel, counts as those two columns;
- wide: a date index (or a ``date`` column) and one column of adjusted close per ticker.
  A NaN cell means "no price that day": before a stock's listing, after its delisting, or
  a missing day in between (the panel then forward-fills and masks it);
- yfinance-style MultiIndex columns, (field, ticker) as ``yf.download`` returns them or
  (ticker, field) with ``group_by="ticker"``. A (date, ticker) whose fields are all NaN is
  a day without a price, as in the wide layout.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from storm_bt.data.dates import parse_date_column
from storm_bt.data.panel import FIELDS
from storm_bt.data.validate import validate_long
from storm_bt.errors import StormBtError

#: Columns yfinance may add next to the prices; they are not price fields and are dropped.
YFINANCE_EXTRAS = frozenset({"dividends", "stock_splits", "capital_gains", "repaired?"})


def long_from_frame(frame: pd.DataFrame, source: str = "<DataFrame>") -> pd.DataFrame:
    """The validated long table (date, ticker, fields...) of a long, wide or MultiIndex frame."""
    if frame.empty:
        raise StormBtError(f"{source}: the DataFrame is empty")
    if isinstance(frame.columns, pd.MultiIndex):
        return _from_multiindex(frame, source)
    frame = index_as_columns(frame)
    if isinstance(frame.index, pd.MultiIndex):
        raise StormBtError(
            f"{source}: its row index has levels {', '.join(map(repr, frame.index.names))}; "
            "name them date and ticker (frame.rename_axis(['date', 'ticker'])) or give "
            "date and ticker as columns")
    names = {_field_name(c): c for c in frame.columns}
    if "ticker" in names:
        if "date" not in names:
            frame = frame.rename_axis("date").reset_index()
        return validate_long(frame, source)
    return _from_wide(frame, source)


def _field_name(label) -> str:
    return str(label).strip().lower().replace(" ", "_")


def is_wide(frame: pd.DataFrame) -> bool:
    """Whether a file's table is wide (a ``date`` column and one adjusted-close column per
    ticker): no ``ticker`` column, and no other column named like a price field (a long
    table that lacks its ticker column stays long, and its error says so)."""
    names = [_field_name(c) for c in frame.columns]
    others = [n for n in names if n != "date"]
    return ("date" in names and "ticker" not in names and bool(others)
            and not set(others) & (set(FIELDS) | {"ticker"}))


def index_as_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with its row-index levels named date or ticker (any case) moved into
    columns, where no column has that name: a long table as pandas keeps one, indexed by
    (date, ticker) or by date, and a Parquet file written from it, read as the same table
    with those columns. Other index levels stay where they are."""
    columns = {_field_name(c) for c in frame.columns}
    levels = [name for name in frame.index.names
              if name is not None and _field_name(name) in ("date", "ticker")
              and _field_name(name) not in columns]
    return frame.reset_index(level=levels) if levels else frame


def _date_index(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    """`frame` indexed by its parsed dates (from a ``date`` column if it has one)."""
    date_cols = [c for c in frame.columns if _field_name(c) == "date"]
    if date_cols:
        frame = frame.set_index(date_cols[0])
    dates = parse_date_column(pd.Series(frame.index), source,
                              lambda i: f"index row {i + 1} ({frame.index[i]!r}): ")
    frame = frame.set_axis(pd.DatetimeIndex(dates), axis=0)
    dup = frame.index.duplicated()
    if dup.any():
        raise StormBtError(f"{source}: the date {frame.index[dup][0].date()} appears twice in "
                           "the index; keep one row per date")
    return frame


def _from_wide(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    """A date x ticker frame of adjusted close prices; NaN cells are days without a price."""
    frame = _date_index(frame, source)
    tickers = [str(c).strip() for c in frame.columns]
    if len(set(tickers)) != len(tickers):
        dup = next(t for t in tickers if tickers.count(t) > 1)
        raise StormBtError(f"{source}: column {dup!r} appears twice; keep one column per ticker")
    values = np.empty(frame.shape)
    for k, col in enumerate(frame.columns):
        raw = frame[col]
        num = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64)
        bad = np.isnan(num) & raw.notna().to_numpy()
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise StormBtError(f"{source}: column {tickers[k]!r} on {frame.index[i].date()} is "
                               f"{raw.iat[i]!r}, not a price; give numbers (NaN for no price)")
        if np.isnan(num).all():
            raise StormBtError(f"{source}: column {tickers[k]!r} has no prices; drop the column")
        values[:, k] = num
    bad = ~np.isnan(values) & ~(values > 0)  # +/-inf and <= 0
    if bad.any():
        i, k = (int(x[0]) for x in np.nonzero(bad))
        raise StormBtError(f"{source}: column {tickers[k]!r} on {frame.index[i].date()} is "
                           f"{float(values[i, k])!r}; prices must be positive (NaN for no price)")
    rows, cols = np.nonzero(~np.isnan(values))
    long = pd.DataFrame({"date": frame.index[rows], "ticker": np.asarray(tickers, dtype=object)[cols],
                         "adj_close": values[rows, cols]})
    long["close"] = long["adj_close"]
    return validate_long(long.sort_values(["ticker", "date"]), source, row_numbers=False)


def _from_multiindex(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    """yfinance-style columns: one level of fields, one of tickers (in either order)."""
    levels = frame.columns.nlevels
    known = set(FIELDS) | YFINANCE_EXTRAS
    field_levels = [lvl for lvl in range(levels)
                    if {_field_name(v) for v in frame.columns.get_level_values(lvl)} <= known
                    and {"close", "adj_close"} & {_field_name(v) for v in frame.columns.get_level_values(lvl)}]
    if levels != 2 or len(field_levels) != 1:
        shown = "; ".join(f"level {lvl}: " + ", ".join(map(str, frame.columns.unique(lvl)[:6]))
                          for lvl in range(levels))
        raise StormBtError(
            f"{source}: cannot read its MultiIndex columns ({shown}); give two levels, one of "
            "fields (Open, High, Low, Close, Adj Close, Volume; at least Close) and one of "
            "tickers, as yf.download returns them")
    field_level = field_levels[0]
    frame = _date_index(frame, source)
    stacked = frame.stack(level=1 - field_level)
    stacked.columns = [_field_name(c) for c in stacked.columns]
    stacked = stacked[[c for c in stacked.columns if c in FIELDS]]
    stacked = stacked[stacked.notna().any(axis=1)]  # no price that day
    stacked.index = stacked.index.set_names(["date", "ticker"])
    long = stacked.reset_index().sort_values(["ticker", "date"])
    return validate_long(long, source, row_numbers=False)
