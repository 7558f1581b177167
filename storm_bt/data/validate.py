"""Validation of long-format price tables, with errors that say where and how to fix.

A long table has one row per (date, ticker) and the columns
``date, ticker, open, high, low, close, adj_close, volume``. Only ``date``, ``ticker`` and
one of ``close`` / ``adj_close`` are required (close-only data is allowed; the missing one
of the two is copied from the other). Row order carries no information: the clean table is
sorted by (ticker, date), so a shuffled file gives exactly the panel of the sorted one.
"""
from __future__ import annotations

import logging
from typing import Callable

import numpy as np
import pandas as pd

from storm_bt.data.dates import parse_date_column
from storm_bt.data.panel import FIELDS, PRICE_FIELDS
from storm_bt.errors import StormBtError

log = logging.getLogger(__name__)


def row_label(frame: pd.DataFrame, i: int, line_offset: int | np.ndarray | None) -> str:
    """'line N' for a CSV (header is line 1), else 'row N' (1-based)."""
    if isinstance(line_offset, np.ndarray):
        return f"line {int(line_offset[i])}"
    if line_offset is not None:
        return f"line {i + line_offset}"
    return f"row {i + 1}"


def validate_long(frame: pd.DataFrame, source: str, line_offset: int | np.ndarray | None = None, *,
                  row_numbers: bool = True) -> pd.DataFrame:
    """Check and normalise a long price table; return a clean copy sorted by (ticker, date).

    Args:
        frame: the raw table as read (column names are lower-cased and stripped here).
        source: the file name (or description) to name in errors.
        line_offset: for CSV input, the file line of data row 0 (2 with one header line),
            or an array of each row's line, so errors can name the line; None for other
            formats.
        row_numbers: False for a table built here from a user's frame, whose row numbers
            mean nothing to the user (errors then name the ticker and date only).

    Raises:
        StormBtError: on a missing column, unparseable or ambiguous dates, NaN, non-positive
            price, negative volume or duplicate (date, ticker).
    """
    def at(i: int) -> str:
        return f"{row_label(out, i, line_offset)}: " if row_numbers else ""

    frame = frame.rename(columns=lambda c: str(c).strip().lower().replace(" ", "_"))
    for col in ("date", "ticker"):
        if col not in frame.columns:
            raise StormBtError(
                f"{source}: missing column {col!r} (found: {', '.join(map(str, frame.columns))}); "
                "a long file needs date,ticker,open,high,low,close,adj_close,volume "
                "(at least date,ticker,close)"
            )
    if "close" not in frame.columns and "adj_close" not in frame.columns:
        raise StormBtError(
            f"{source}: missing column 'close' (or 'adj_close'); found: {', '.join(map(str, frame.columns))}"
        )
    frame = frame.reset_index(drop=True)
    # an empty cell is NaN or None (pandas 3 keeps it missing through astype(str)): it
    # becomes "" here, so the empty-ticker check below sees it
    out = pd.DataFrame({"ticker": frame["ticker"].astype(object).where(frame["ticker"].notna(), "")
                        .astype(str).str.strip()})
    out["date"] = parse_date_column(frame["date"], source, at)

    present = [f for f in FIELDS if f in frame.columns]
    for col in present:
        out[col] = _numeric(frame[col], col, source, at, out)
    if "close" not in out:
        out["close"] = out["adj_close"]
    if "adj_close" not in out:
        out["adj_close"] = out["close"]
    partial_ohlc = [f for f in ("open", "high", "low") if f in out]
    if 0 < len(partial_ohlc) < 3:
        missing = sorted({"open", "high", "low"} - set(partial_ohlc))
        raise StormBtError(
            f"{source}: has {', '.join(partial_ohlc)} but not {', '.join(missing)}; "
            "give all of open,high,low or none of them"
        )

    empty = out["ticker"].isin(["", "nan", "None"])
    if empty.any():
        i = int(np.flatnonzero(empty.to_numpy())[0])
        raise StormBtError(f"{source}: {at(i)}empty ticker; fill it in or drop the row")

    for col in (f for f in PRICE_FIELDS if f in out):
        bad = ~(out[col].to_numpy() > 0)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise StormBtError(
                f"{source}: {at(i)}column {col!r} = {show_value(out[col].iat[i])} "
                f"for {out['ticker'].iat[i]} on {out['date'].iat[i].date()}; prices must be positive: "
                "fix or drop the row"
            )
    if "volume" in out:
        bad = out["volume"].to_numpy() < 0
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise StormBtError(
                f"{source}: {at(i)}negative volume {show_value(out['volume'].iat[i])} "
                f"for {out['ticker'].iat[i]} on {out['date'].iat[i].date()}; fix or drop the row"
            )

    codes = pd.factorize(out["ticker"], sort=True)[0]
    days = out["date"].to_numpy().view(np.int64)
    same = codes[1:] == codes[:-1]
    if np.all((codes[1:] > codes[:-1]) | (same & (days[1:] > days[:-1]))):
        return out  # sorted, hence no duplicates
    order = np.lexsort((days, codes))  # stable
    if np.any((codes[order][1:] == codes[order][:-1]) & (days[order][1:] == days[order][:-1])):
        dup = out.duplicated(["ticker", "date"], keep="first").to_numpy()
        i = int(np.flatnonzero(dup)[0])
        t, d = out["ticker"].iat[i], out["date"].iat[i]
        first = int(np.flatnonzero(((out["ticker"] == t) & (out["date"] == d)).to_numpy())[0])
        first_at = f" (first at {row_label(out, first, line_offset)})" if row_numbers else ""
        raise StormBtError(
            f"{source}: {at(i)}duplicate row for {t} on {d.date()}{first_at}; "
            "keep one row per (date, ticker)"
        )
    log.info("%s: rows are not sorted by ticker, date; sorted them (row order carries no "
             "information)", source)
    return out.iloc[order].reset_index(drop=True)


def show_value(value) -> str:
    """A raw cell as a user would read it: 'empty' for a blank/NaN cell, else its repr."""
    if value is None or (isinstance(value, float) and value != value) or pd.isna(value):
        return "empty"
    return repr(value.item() if hasattr(value, "item") else value)


def _numeric(col: pd.Series, name: str, source: str, at: Callable[[int], str],
             out: pd.DataFrame) -> pd.Series:
    values = pd.to_numeric(col, errors="coerce").astype(np.float64)
    bad = ~np.isfinite(values.to_numpy())
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise StormBtError(
            f"{source}: {at(i)}column {name!r} is {show_value(col.iat[i])} "
            f"for {out['ticker'].iat[i]} on {out['date'].iat[i].date()} ({int(bad.sum())} such rows); "
            "fill or drop those rows"
        )
    return values
