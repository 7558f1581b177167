"""Backtrader data feeds built from a `Panel`'s numpy arrays, on total-return prices.

Prices are dividend-adjusted so that a held position earns the total return:

    f_t = adj_close_t / close_t
    open'_t = open_t * f_t,  high'_t = high_t * f_t,  low'_t = low_t * f_t,  close'_t = adj_close_t

Close-only panels (fields close, adj_close) give open' = high' = low' = close' = adj_close_t.

Days outside a ticker's listing, within [start, end] (every feed spans the same calendar, so
backtrader never has to align feeds of different lengths):
  * before its first observation: all prices are NaN and ``tradable`` is 0. Nothing is known
    about the ticker yet, so nothing can be bought (and a NaN can never leak a future price);
  * a day it has no row (a gap inside its listing, or any day after its last row): open = high
    = low = close = the last adjusted close, carried forward, volume 0 and ``tradable`` 0. A
    held position keeps its last value and is not traded that day.
``tradable`` is 1 exactly on the days the ticker has a row (`Panel.mask`).

`ArrayFeed` loads bars from Python lists prepared once, which is about twice as fast as
backtrader's `PandasData` (no per-bar pandas indexing).
"""
from __future__ import annotations

import logging

import backtrader as bt
import numpy as np
import pandas as pd

from storm_bt.data.panel import Panel
from storm_bt.errors import StormBtError

log = logging.getLogger(__name__)

#: The columns an `ArrayFeed` reads, in this order.
FEED_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close", "volume", "tradable")


class ArrayFeed(bt.feed.DataBase):
    """A daily feed over prepared columns: ``datetimes`` (backtrader date numbers) and one
    equal-length sequence per name in `FEED_COLUMNS`. The extra line ``tradable`` is 1.0 on
    days the instrument really trades and 0.0 otherwise (see the module docstring)."""

    lines = ("tradable",)
    params = (("timeframe", bt.TimeFrame.Days),)

    def __init__(self, datetimes: list[float], columns: dict[str, list[float]]) -> None:
        missing = [c for c in FEED_COLUMNS if c not in columns]
        if missing:
            raise ValueError(f"ArrayFeed needs the columns {missing}")
        if any(len(columns[c]) != len(datetimes) for c in FEED_COLUMNS):
            raise ValueError("ArrayFeed columns must have the length of datetimes")
        super().__init__()
        self._datetimes = list(datetimes)
        self._columns = [list(columns[c]) for c in FEED_COLUMNS]
        self._row = 0

    def start(self) -> None:
        super().start()
        self._row = 0

    def _load(self) -> bool:
        i = self._row
        if i >= len(self._datetimes):
            return False
        lines = self.lines
        lines.datetime[0] = self._datetimes[i]
        o, h, lo, c, v, tr = self._columns
        lines.open[0] = o[i]
        lines.high[0] = h[i]
        lines.low[0] = lo[i]
        lines.close[0] = c[i]
        lines.volume[0] = v[i]
        lines.openinterest[0] = 0.0
        lines.tradable[0] = tr[i]
        self._row = i + 1
        return True


def total_return_prices(panel: Panel) -> dict[str, np.ndarray]:
    """The (dates, tickers) arrays of `FEED_COLUMNS` over the whole panel (see module docstring)."""
    adj = panel.array("adj_close")
    if all(f in panel.fields for f in ("open", "high", "low")):
        factor = adj / panel.array("close")
        prices = {f: panel.array(f) * factor for f in ("open", "high", "low")}
    else:
        log.info("%s has no open, high, low: every fill at an open is at the adjusted "
                 "close (close-only data)", panel.source)
        prices = {f: adj.copy() for f in ("open", "high", "low")}
    prices["close"] = adj.copy()
    volume = panel.array("volume").copy() if "volume" in panel.fields else np.zeros_like(adj)

    tradable = panel.mask.copy()
    # Carry the last adjusted close over every day without a row, inside or after the listing;
    # days before the first row keep NaN.
    last_close = pd.DataFrame(np.where(tradable, adj, np.nan)).ffill().to_numpy()
    idle = ~tradable & np.isfinite(last_close)
    for f in ("open", "high", "low", "close"):
        prices[f][idle] = last_close[idle]
    volume[~tradable] = 0.0
    prices["volume"] = np.nan_to_num(volume, nan=0.0)
    prices["tradable"] = tradable.astype(np.float64)
    return prices


def panel_feeds(panel: Panel, start: str | pd.Timestamp | None = None,
                end: str | pd.Timestamp | None = None) -> list[ArrayFeed]:
    """One `ArrayFeed` per ticker of `panel`, in panel order, over the panel days in
    [start, end] (inclusive; None = the panel's first/last day), on total-return prices.
    Each feed is named after its ticker (``feed._name``)."""
    lo = 0 if start is None else int(panel.dates.searchsorted(pd.Timestamp(start), side="left"))
    hi = len(panel.dates) if end is None else int(
        panel.dates.searchsorted(pd.Timestamp(end), side="right"))
    if hi <= lo:
        raise StormBtError(
            f"{panel.source}: no trading day between {start} and {end} (the data covers "
            f"{panel.dates[0].date()} .. {panel.dates[-1].date()}); choose dates inside that range")
    # Carrying prices forward needs the days before `start` too, so prepare, then cut.
    prices = {k: v[lo:hi] for k, v in total_return_prices(panel.until(panel.dates[hi - 1])).items()}
    datetimes = [bt.date2num(d) for d in panel.dates[lo:hi].to_pydatetime()]
    feeds = []
    for s, ticker in enumerate(panel.tickers):
        feed = ArrayFeed(datetimes, {c: prices[c][:, s].tolist() for c in FEED_COLUMNS})
        feed._name = ticker
        feeds.append(feed)
    return feeds
