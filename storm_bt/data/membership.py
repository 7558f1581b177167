"""Point-in-time index membership: which tickers were in the universe on each day.

A membership file is a CSV with columns ``ticker,start_date,end_date``, one row per interval
(a ticker that left and rejoined has several), as ``shared/data/sp500_membership_intervals.csv``.
An empty ``end_date`` means "still a member". As in that file, ``end_date`` is the first day
out of the index (the day the change takes effect), so a ticker is a member on day t iff

    start_date <= t < end_date.

`membership_mask` puts the intervals on a panel's calendar: a date x ticker boolean frame.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from storm_bt.data.dates import parse_date_column
from storm_bt.data.panel import Panel
from storm_bt.errors import StormBtError

log = logging.getLogger(__name__)

COLUMNS = ("ticker", "start_date", "end_date")


def read_membership(path: str | Path) -> pd.DataFrame:
    """The validated intervals of a membership file: ticker, start_date, end_date (NaT = open).

    Raises:
        StormBtError: naming the file and line of a missing column, an empty ticker, an
            unreadable date, an end not after its start, or overlapping intervals of a ticker.
    """
    path = Path(path)
    if not path.is_file():
        raise StormBtError(f"{path}: no such file; give a membership CSV with columns "
                           "ticker,start_date,end_date")
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    except Exception as exc:  # pandas raises many types; the user needs one line
        raise StormBtError(f"{path}: cannot read it ({type(exc).__name__}: {exc})") from None
    raw = raw.rename(columns=lambda c: str(c).strip().lower())
    missing = [c for c in COLUMNS if c not in raw.columns]
    if missing:
        raise StormBtError(f"{path}: missing column(s) {', '.join(missing)} (found: "
                           f"{', '.join(map(str, raw.columns))}); a membership file has "
                           "ticker,start_date,end_date (empty end_date: still a member)")
    if raw.empty:
        raise StormBtError(f"{path}: the file has no rows")

    def line(i: int) -> str:
        return f"line {i + 2}: "

    ticker = raw["ticker"].str.strip()
    if (ticker == "").any():
        i = int(np.flatnonzero((ticker == "").to_numpy())[0])
        raise StormBtError(f"{path}: {line(i)}empty ticker; fill it in or drop the row")
    start = parse_date_column(raw["start_date"].str.strip(), str(path), line)
    end = pd.Series(pd.NaT, index=raw.index, dtype="datetime64[ns]")
    has_end = (raw["end_date"].str.strip() != "").to_numpy()
    if has_end.any():
        rows = np.flatnonzero(has_end)
        end.iloc[rows] = parse_date_column(raw["end_date"].iloc[rows].str.strip(), str(path),
                                           lambda k: line(int(rows[k]))).to_numpy()
    bad = (has_end & (end <= start).to_numpy())
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise StormBtError(f"{path}: {line(i)}{ticker.iat[i]} ends {end.iat[i].date()}, not "
                           f"after its start {start.iat[i].date()}; fix the dates or drop the row")
    out = pd.DataFrame({"ticker": ticker, "start_date": start, "end_date": end})
    order = out.sort_values(["ticker", "start_date"], kind="stable").index.to_numpy()
    sorted_ = out.loc[order]
    same = sorted_["ticker"].to_numpy()[1:] == sorted_["ticker"].to_numpy()[:-1]
    prev_end = sorted_["end_date"].to_numpy()[:-1]
    next_start = sorted_["start_date"].to_numpy()[1:]
    overlap = same & (np.isnat(prev_end) | (next_start < prev_end))
    if overlap.any():
        k = int(np.flatnonzero(overlap)[0])
        a, b = int(order[k]), int(order[k + 1])
        a, b = min(a, b), max(a, b)
        raise StormBtError(f"{path}: {line(b)}{ticker.iat[b]}'s interval overlaps the one on "
                           f"line {a + 2}; merge them into one row")
    return out


def membership_mask(intervals: pd.DataFrame, panel: Panel, source: str = "membership") -> pd.DataFrame:
    """A date x ticker boolean frame on `panel`'s axes: True where the ticker is a member.

    A ticker of the panel with no interval is never a member (logged); if none of the
    panel's tickers has one, the file is the wrong one and that is an error.
    """
    mask = np.zeros((len(panel.dates), len(panel.tickers)), dtype=bool)
    column = {t: j for j, t in enumerate(panel.tickers)}
    known = intervals[intervals["ticker"].isin(column)]
    if known.empty:
        raise StormBtError(f"{source}: none of the data's {len(panel.tickers)} tickers "
                           f"({', '.join(panel.tickers[:5])} ...) has an interval; "
                           "is it the membership file of this universe?")
    lo = panel.dates.searchsorted(known["start_date"].to_numpy())
    hi = panel.dates.searchsorted(known["end_date"].fillna(pd.Timestamp.max).to_numpy())
    for t, a, b in zip(known["ticker"], lo, hi):
        mask[a:b, column[t]] = True
    never = [t for t in panel.tickers if t not in set(known["ticker"])]
    if never:
        log.warning("%s: %d ticker(s) of the data have no membership interval and are never "
                    "members: %s", source, len(never), ", ".join(never[:10]) + (" ..." if len(never) > 10 else ""))
    return pd.DataFrame(mask, index=panel.dates, columns=list(panel.tickers))


def load_membership(path: str | Path, panel: Panel) -> pd.DataFrame:
    """`membership_mask` of the file at `path` on `panel`'s calendar."""
    return membership_mask(read_membership(path), panel, str(path))
