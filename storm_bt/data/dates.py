"""Reading dates: ISO dates for flags, one detected format per file for data.

- Flags (`parse_iso_date`) take ``YYYY-MM-DD`` only, so ``01/06/2012`` can never be read
  as January by one flag and June by another.
- A file's date column (`parse_date_column`) holds one format, detected from its values:
  ``YYYY-MM-DD`` (a time or UTC offset after it is ignored: the date is the local one),
  ``YYYY/MM/DD``, ``YYYYMMDD``, or day/month/year with ``/``, ``.`` or ``-``. Whether the
  latter is day-first or month-first is decided by the values: a first number above 12
  means day-first, a second number above 12 month-first. A file where neither occurs is
  ambiguous and refused, as is a file that mixes formats.
"""
from __future__ import annotations

import datetime as _dt
import re
from typing import Callable

import numpy as np
import pandas as pd

from storm_bt.errors import StormBtError

_ISO_FLAG = re.compile(r"\d{4}-\d{2}-\d{2}")
_ISO = re.compile(r"(\d{4}-\d{1,2}-\d{1,2})(?:[ T].*)?")
_YMD_SLASH = re.compile(r"\d{4}/\d{1,2}/\d{1,2}")
_COMPACT = re.compile(r"\d{8}")
_DMY = re.compile(r"(\d{1,2})([/.-])(\d{1,2})\2(\d{4})")


def parse_iso_date(value: str | _dt.date | pd.Timestamp, flag: str) -> pd.Timestamp:
    """`value` as a day, from a ``YYYY-MM-DD`` string (or a date object from Python code).

    Raises:
        StormBtError: naming `flag` (e.g. ``--train-start``) when `value` is not an ISO date.
    """
    if isinstance(value, (pd.Timestamp, _dt.date)):
        return pd.Timestamp(value).normalize()
    text = str(value).strip()
    if _ISO_FLAG.fullmatch(text):
        try:
            return pd.Timestamp(_dt.date.fromisoformat(text))
        except ValueError:
            raise StormBtError(f"{flag} {value!r} is not a date: there is no such day; "
                               "use YYYY-MM-DD, e.g. 2019-04-01") from None
    raise StormBtError(f"{flag} {value!r} is not a date in YYYY-MM-DD form; "
                       "write it as e.g. 2019-04-01")


def parse_date_column(col: pd.Series, source: str,
                      where: Callable[[int], str]) -> pd.Series:
    """The days of a date column (datetime64[ns], time of day dropped), in one format.

    Args:
        col: the raw column (strings, integers, or datetimes).
        source: the file or description to name in errors.
        where: row index (0-based) -> its place for a message, e.g. ``"line 7: "``.

    Raises:
        StormBtError: on an unreadable date, mixed formats, or ambiguous day/month order.
    """
    col = col.reset_index(drop=True)
    if pd.api.types.is_datetime64_any_dtype(col):
        parsed = col
        if getattr(parsed.dt, "tz", None) is not None:
            parsed = parsed.dt.tz_localize(None)  # keep the local date
        bad = parsed.isna().to_numpy()
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise StormBtError(f"{source}: {where(i)}empty date; fill it in or drop the row")
        return parsed.dt.normalize().astype("datetime64[ns]")
    codes, uniques = pd.factorize(col, use_na_sentinel=True)
    if (codes < 0).any():
        i = int(np.flatnonzero(codes < 0)[0])
        raise StormBtError(f"{source}: {where(i)}empty date; fill it in or drop the row")
    texts = [_as_text(u) for u in uniques]
    days = _parse_texts(texts, lambda k: int(np.flatnonzero(codes == k)[0]), col, source, where)
    return pd.Series(days[codes], index=col.index, name=col.name).astype("datetime64[ns]")


def _as_text(value) -> str:
    if isinstance(value, (pd.Timestamp, _dt.datetime, _dt.date)):
        return pd.Timestamp(value).strftime("%Y-%m-%d")
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return str(value).strip()


def _parse_texts(texts: list[str], first_row: Callable[[int], int], col: pd.Series,
                 source: str, where: Callable[[int], str]) -> pd.DatetimeIndex:
    """Parse the distinct date strings of one file, checking they share one format."""
    kinds, days, dmy_first, dmy_second = [], [], [], []
    for k, text in enumerate(texts):
        if m := _ISO.fullmatch(text):
            kinds.append("YYYY-MM-DD")
            days.append(m.group(1))
        elif _YMD_SLASH.fullmatch(text):
            kinds.append("YYYY/MM/DD")
            days.append(text.replace("/", "-"))
        elif _COMPACT.fullmatch(text):
            kinds.append("YYYYMMDD")
            days.append(f"{text[:4]}-{text[4:6]}-{text[6:]}")
        elif m := _DMY.fullmatch(text):
            sep = m.group(2)
            kinds.append(f"nn{sep}nn{sep}yyyy")
            dmy_first.append(int(m.group(1)))
            dmy_second.append(int(m.group(3)))
            days.append(text)
        else:
            i = first_row(k)
            raise StormBtError(f"{source}: {where(i)}cannot read date {_show(col.iat[i])}; "
                               "use YYYY-MM-DD")
    found = list(dict.fromkeys(kinds))
    if len(found) > 1:
        a, b = kinds.index(found[0]), kinds.index(found[1])
        raise StormBtError(
            f"{source}: mixes date formats ({where(first_row(a))}{texts[a]!r}, "
            f"{where(first_row(b))}{texts[b]!r}); write every date as YYYY-MM-DD")
    fmt = "%Y-%m-%d"
    if found and found[0].startswith("nn"):
        sep = found[0][2]
        day_first, month_first = max(dmy_first) > 12, max(dmy_second) > 12
        if day_first and month_first:
            a, b = int(np.argmax(dmy_first)), int(np.argmax(dmy_second))
            raise StormBtError(
                f"{source}: dates are neither all day-first nor all month-first "
                f"({where(first_row(a))}{texts[a]!r}, {where(first_row(b))}{texts[b]!r}); "
                "write every date as YYYY-MM-DD")
        if not (day_first or month_first):
            raise StormBtError(
                f"{source}: ambiguous dates: no date (e.g. {texts[0]!r}) has a day above 12, so "
                f"they may be dd{sep}mm{sep}yyyy or mm{sep}dd{sep}yyyy; write the dates as YYYY-MM-DD")
        fmt = f"%d{sep}%m{sep}%Y" if day_first else f"%m{sep}%d{sep}%Y"
        found[0] = fmt.replace("%d", "dd").replace("%m", "mm").replace("%Y", "yyyy")
    parsed = pd.to_datetime(pd.Series(days, dtype=object), format=fmt, errors="coerce")
    bad = parsed.isna().to_numpy()
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        i = first_row(k)
        raise StormBtError(f"{source}: {where(i)}cannot read date {_show(col.iat[i])} "
                           f"as {found[0]} (no such day); fix it or drop the row")
    return pd.DatetimeIndex(parsed)


def _show(value) -> str:
    return repr(value.item() if hasattr(value, "item") else value)
