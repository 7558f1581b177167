"""`SignalStrategy`: the backtrader base of strategies driven by a date x ticker signal table.

Timing, with no look-ahead: at the close of bar t, `next` gives `on_signal(date, row)` the
newest signal row dated <= t that has not been given yet. Rows dated after t are never read
at t; rows dated between two bars collapse into the newest one (the decision is taken at the
first close on or after its date). Orders placed then execute on a later bar (the subclass
decides how; `PortfolioStrategy` fills them at the next bar's open).

The strategy records the portfolio value and cash at every close and every fill (date,
ticker, size, price, commission); after the run, `equity()`, `cash()`, `returns()` and
`trades()` return them as pandas objects. Subclasses that override `next` or `notify_order`
call the base method first.

All feeds are expected to share one calendar (as `strategies.feeds.panel_feeds` builds them);
signal columns are matched to feeds by name (``feed._name``).
"""
from __future__ import annotations

import bisect
import logging

import backtrader as bt
import numpy as np
import pandas as pd

from storm_bt.errors import StormBtError

log = logging.getLogger(__name__)

#: The columns of `SignalStrategy.trades()`.
TRADE_COLUMNS: tuple[str, ...] = ("date", "ticker", "size", "price", "commission")


class SignalStrategy(bt.Strategy):
    """Hands each new signal row to `on_signal` at the close of its date; records the book.

    Params:
        signals: DataFrame, date index x one column per feed name; the row dated t is
            known at the close of t. Columns missing from the table read as NaN.
    """

    params = (("signals", None),)
    #: The name of the param that holds the signal table (a subclass may rename it).
    signal_param: str = "signals"

    def __init__(self) -> None:
        self.tickers: tuple[str, ...] = tuple(d._name for d in self.datas)
        frame = getattr(self.p, self.signal_param)
        self._signal_dates, self._signal_values = _signal_table(frame, self.tickers,
                                                                self.signal_param)
        self._unread = 0  # index of the first signal row not handed out yet
        self._bar_dt: list[float] = []
        self._bar_value: list[float] = []
        self._bar_cash: list[float] = []
        self._fills: list[tuple] = []
        #: Orders the broker did not fill (margin, rejected, cancelled), as (date, ticker, status).
        self.unfilled: list[tuple[pd.Timestamp, str, str]] = []

    # ------------------------------------------------------------------- hooks
    def on_signal(self, date: pd.Timestamp, signal_row: pd.Series) -> None:
        """The decision taken at the close of `date` from `signal_row` (index: tickers)."""
        raise NotImplementedError(f"{type(self).__name__} must define on_signal(date, signal_row)")

    # --------------------------------------------------------------- lifecycle
    def next(self) -> None:
        dt = self.datetime[0]
        self._bar_dt.append(dt)
        self._bar_value.append(self.broker.getvalue())
        self._bar_cash.append(self.broker.getcash())
        newest = bisect.bisect_right(self._signal_dates, dt) - 1
        if newest >= self._unread:
            self._unread = newest + 1
            date = _to_date(dt)
            row = pd.Series(self._signal_values[newest], index=list(self.tickers), name=date)
            self.on_signal(date, row)

    def notify_order(self, order: bt.Order) -> None:
        if order.status == order.Completed:
            ex = order.executed
            self._fills.append((ex.dt, order.data._name, ex.size, ex.price, ex.comm))
        elif order.status in (order.Margin, order.Rejected, order.Canceled, order.Expired):
            date = _to_date(self.datetime[0])
            status = order.getstatusname()
            self.unfilled.append((date, order.data._name, status))
            log.warning("%s: order for %s of size %.6g not filled (%s)", date.date(),
                        order.data._name, order.created.size, status)

    # ----------------------------------------------------------------- results
    def equity(self) -> pd.Series:
        """Portfolio value at each bar's close (cash + sum of shares x close)."""
        return pd.Series(self._bar_value, index=self._bar_index(), name="equity", dtype=float)

    def cash(self) -> pd.Series:
        """Cash at each bar's close."""
        return pd.Series(self._bar_cash, index=self._bar_index(), name="cash", dtype=float)

    def returns(self) -> pd.Series:
        """Daily simple returns of `equity()` (from the second bar on)."""
        return self.equity().pct_change().iloc[1:].rename("returns")

    def trades(self) -> pd.DataFrame:
        """Every fill: date, ticker, size (signed, negative = sell), price, commission."""
        frame = pd.DataFrame(self._fills, columns=list(TRADE_COLUMNS))
        frame["date"] = _to_timestamps([f[0] for f in self._fills])
        return frame.astype({"size": float, "price": float, "commission": float})

    def _bar_index(self) -> pd.DatetimeIndex:
        return _to_timestamps(self._bar_dt).rename("date")


def _to_date(number: float) -> pd.Timestamp:
    """A backtrader date number as a nanosecond day (the unit of `Panel.dates`)."""
    return pd.Timestamp(bt.num2date(number)).normalize().as_unit("ns")


def _to_timestamps(numbers: list[float]) -> pd.DatetimeIndex:
    return pd.DatetimeIndex([bt.num2date(x) for x in numbers]).normalize().as_unit("ns")


def signal_dates(index: pd.Index, param: str) -> pd.DatetimeIndex:
    """A signal's index as naive, sorted, unique dates, or a StormBtError naming `param`."""
    try:
        dates = pd.DatetimeIndex(index)
    except (TypeError, ValueError) as exc:
        raise StormBtError(f"param {param!r}: the index must hold dates ({exc})") from None
    if dates.tz is not None:
        dates = dates.tz_localize(None)
    if dates.has_duplicates or not dates.is_monotonic_increasing:
        raise StormBtError(f"param {param!r}: the dates must be sorted and unique "
                           f"(sort_index() and drop duplicated dates)")
    return dates


def _signal_table(frame: pd.DataFrame | None, tickers: tuple[str, ...],
                  param: str) -> tuple[list[float], np.ndarray]:
    """Signal dates as backtrader date numbers and the values as (dates, tickers) floats."""
    if frame is None:
        return [], np.empty((0, len(tickers)))
    if not isinstance(frame, pd.DataFrame):
        raise StormBtError(f"param {param!r} must be a DataFrame (date x ticker), "
                           f"got {type(frame).__name__}")
    dates = signal_dates(frame.index, param)
    unknown = [str(c) for c in frame.columns if c not in tickers]
    if unknown:
        raise StormBtError(f"param {param!r}: column(s) {', '.join(unknown[:10])} match no data "
                           f"feed (feeds: {', '.join(tickers[:12])}); "
                           "add their prices or drop them")
    try:
        values = frame.reindex(columns=list(tickers)).to_numpy(dtype=np.float64, copy=True)
    except (TypeError, ValueError) as exc:
        raise StormBtError(f"param {param!r}: values must be numbers ({exc})") from None
    return [bt.date2num(d) for d in dates.to_pydatetime()], values
