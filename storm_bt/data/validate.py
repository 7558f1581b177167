"""Validation of long-format price tables, with errors that say where and how to fix.

A long table has one row per (date, ticker) and the columns
``date, ticker, open, high, low, close, adj_close, volume``. Only ``date``, ``ticker`` and
one of ``close`` / ``adj_close`` are required (close-only data is allowed; the missing one
of the two is copied from the other).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from storm_bt.data.panel import FIELDS, PRICE_FIELDS
from storm_bt.errors import StormBtError


def row_label(frame: pd.DataFrame, i: int, line_offset: int | None) -> str:
    """'line N' for a CSV (header is line 1), else 'row N' (1-based)."""
    if line_offset is not None:
        return f"line {i + line_offset}"
    return f"row {i + 1}"


def validate_long(frame: pd.DataFrame, source: str, line_offset: int | None = None) -> pd.DataFrame:
    """Check and normalise a long price table; return a clean copy.

    Args:
        frame: the raw table as read (column names are lower-cased and stripped here).
        source: the file name (or description) to name in errors.
        line_offset: for CSV input, the file line of data row 0 (2 with one header line),
            so errors can name the line; None for other formats.

    Raises:
        StormBtError: on a missing column, unparseable date, NaN, non-positive price,
            negative volume, duplicate (date, ticker) or rows out of date order.
    """
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
    out = pd.DataFrame({"ticker": frame["ticker"].astype(str).str.strip()})
    out["date"] = _parse_dates(frame["date"], source, line_offset)

    present = [f for f in FIELDS if f in frame.columns]
    for col in present:
        out[col] = _numeric(frame[col], col, source, line_offset, out)
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
        raise StormBtError(f"{source}: {row_label(out, i, line_offset)}: empty ticker; fill it in or drop the row")

    for col in (f for f in PRICE_FIELDS if f in out):
        bad = ~(out[col].to_numpy() > 0)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise StormBtError(
                f"{source}: {row_label(out, i, line_offset)}: column {col!r} = {show_value(out[col].iat[i])} "
                f"for {out['ticker'].iat[i]} on {out['date'].iat[i].date()}; prices must be positive: "
                "fix or drop the row"
            )
    if "volume" in out:
        bad = out["volume"].to_numpy() < 0
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise StormBtError(
                f"{source}: {row_label(out, i, line_offset)}: negative volume {show_value(out['volume'].iat[i])} "
                f"for {out['ticker'].iat[i]} on {out['date'].iat[i].date()}; fix or drop the row"
            )

    dup = out.duplicated(["ticker", "date"], keep="first").to_numpy()
    if dup.any():
        i = int(np.flatnonzero(dup)[0])
        t, d = out["ticker"].iat[i], out["date"].iat[i]
        first = int(np.flatnonzero(((out["ticker"] == t) & (out["date"] == d)).to_numpy())[0])
        raise StormBtError(
            f"{source}: {row_label(out, i, line_offset)}: duplicate row for {t} on {d.date()} "
            f"(first at {row_label(out, first, line_offset)}); keep one row per (date, ticker)"
        )

    # Within each ticker, the rows must come in increasing date order.
    order = out.groupby("ticker", sort=False)["date"].diff()
    unsorted = (order <= pd.Timedelta(0)).to_numpy()
    if unsorted.any():
        i = int(np.flatnonzero(unsorted)[0])
        t = out["ticker"].iat[i]
        raise StormBtError(
            f"{source}: {row_label(out, i, line_offset)}: rows for {t} are not in date order "
            f"({out['date'].iat[i].date()} comes after a later date); sort the file by ticker, date"
        )
    return out


def show_value(value) -> str:
    """A raw cell as a user would read it: 'empty' for a blank/NaN cell, else its repr."""
    if value is None or (isinstance(value, float) and value != value) or pd.isna(value):
        return "empty"
    return repr(value.item() if hasattr(value, "item") else value)


def _parse_dates(col: pd.Series, source: str, line_offset: int | None) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(col):
        parsed = col
    else:
        parsed = pd.to_datetime(col, errors="coerce", format="mixed")
    bad = parsed.isna().to_numpy()
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise StormBtError(
            f"{source}: {row_label(col.to_frame(), i, line_offset)}: cannot read date {show_value(col.iat[i])}; "
            "use YYYY-MM-DD"
        )
    if getattr(parsed.dt, "tz", None) is not None:
        parsed = parsed.dt.tz_localize(None)
    return parsed.dt.normalize().astype("datetime64[ns]")


def _numeric(col: pd.Series, name: str, source: str, line_offset: int | None,
             out: pd.DataFrame) -> pd.Series:
    values = pd.to_numeric(col, errors="coerce").astype(np.float64)
    bad = ~np.isfinite(values.to_numpy())
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise StormBtError(
            f"{source}: {row_label(out, i, line_offset)}: column {name!r} is {show_value(col.iat[i])} "
            f"for {out['ticker'].iat[i]} on {out['date'].iat[i].date()} ({int(bad.sum())} such rows); "
            "fill or drop those rows"
        )
    return values
