"""`SignalStrategy`: the backtrader base of every strategy here, driven by a dated signal table.

Timing, with no look-ahead: at the close of bar t, `next` gives `on_signal(date, row)` the
newest signal row dated <= t that has not been given yet. Rows dated after t are never read
at t; rows dated between two bars collapse into the newest one (the decision is taken at the
first close on or after its date). Orders placed then execute on a later bar or at the same
close, as the subclass's cerebro decides (`PortfolioStrategy` fills at the next bar's open,
`TradingStrategy` at the same close, cheat-on-close).

Costs: the ``cost_bps`` param is turned into the rate c = cost_bps / 10_000
(`storm_bt.units.bps_to_fraction`) once, in `start`, which installs the commission
(`strategies.commission`) on the broker; a subclass reads the rate as ``self.cost``.

The book, recorded at every close: V_t = the value after the day's trades, at the close
(cash + sum of shares x close; a fill at that same close, cheat-on-close, counts with its
commission), and the cash; and every fill (date, ticker, size, price, commission). After
the run, `equity()`, `cash()`, `returns()` and `trades()` return them as pandas objects.
Returns, one convention for every strategy:

    r_t = V_t / V_{t-1} - 1,   V_{-1} = the starting cash,   for t >= fill_lag

where `fill_lag` is the number of bars from a decision to its fill (1 for the next open,
0 for the same close): the returns start on the first bar whose value a trade can have
changed. Subclasses that override `next` or `notify_order` call the base method.

All feeds are expected to share one calendar (as `strategies.feeds.panel_feeds` builds them).
"""
from __future__ import annotations

import bisect
import logging
from typing import Any

import backtrader as bt
import numpy as np
import pandas as pd

from storm_bt.errors import StormBtError
from storm_bt.units import bps_to_fraction
from strategies.commission import commission_info

log = logging.getLogger(__name__)

#: The columns of `SignalStrategy.trades()`.
TRADE_COLUMNS: tuple[str, ...] = ("date", "ticker", "size", "price", "commission")


class SignalStrategy(bt.Strategy):
    """Hands each new signal row to `on_signal` at the close of its date; records the book.

    Params:
        signals: DataFrame, date index x one column per feed name (``feed._name``); the row
            dated t is known at the close of t. Columns missing from the table read as NaN.
        cost_bps: commission in basis points of traded value (default 0).
    """

    params = (("signals", None), ("cost_bps", 0.0))
    #: The name of the param that holds the signal table (a subclass may rename it).
    signal_param: str = "signals"
    #: Bars from a decision to its fill: 1 = the next bar's open, 0 = the same close.
    fill_lag: int = 1
    #: Whether the broker may fill fractions of a share (see `strategies.commission`).
    fractional_shares: bool = True

    def __init__(self) -> None:
        self.tickers: tuple[str, ...] = tuple(d._name for d in self.datas)
        frame = getattr(self.p, self.signal_param)
        self._signal_dates, self._signal_values = self.signal_table(frame)
        self._unread = 0  # index of the first signal row not handed out yet
        self._bar_dt: list[float] = []
        self._bar_value: list[float] = []
        self._bar_cash: list[float] = []
        self._fills: list[tuple] = []
        #: Orders the broker did not fill (margin, rejected, cancelled), as
        #: (decision date, ticker, status).
        self.unfilled: list[tuple[pd.Timestamp, str, str]] = []

    def start(self) -> None:
        #: The commission rate, a fraction of traded value.
        self.cost = bps_to_fraction(self.p.cost_bps, "cost_bps")
        self.broker.addcommissioninfo(commission_info(self.cost, self.fractional_shares))

    # ------------------------------------------------------------------- hooks
    def on_signal(self, date: pd.Timestamp, signal_row: Any) -> None:
        """The decision taken at the close of `date` from `signal_row` (see `signal_row`)."""
        raise NotImplementedError(f"{type(self).__name__} must define on_signal(date, signal_row)")

    def signal_table(self, frame: Any) -> tuple[list[float], np.ndarray]:
        """The signal param as (backtrader date numbers, one row of values per date).

        This default reads a date x ticker DataFrame, its columns matched to the feeds.
        """
        return _ticker_table(frame, self.tickers, self.signal_param)

    def signal_row(self, i: int, date: pd.Timestamp) -> Any:
        """What `on_signal` receives for row `i`: here a Series indexed by the tickers."""
        return pd.Series(self._signal_values[i], index=list(self.tickers), name=date)

    # --------------------------------------------------------------- lifecycle
    def bar_date(self) -> pd.Timestamp:
        """The current bar's day (a nanosecond Timestamp, the unit of `Panel.dates`)."""
        return _to_date(self.datetime[0])

    def next(self) -> None:
        dt = self.datetime[0]
        self._bar_dt.append(dt)
        self._bar_value.append(self.broker.getvalue())
        self._bar_cash.append(self.broker.getcash())
        newest = bisect.bisect_right(self._signal_dates, dt) - 1
        if newest >= self._unread:
            self._unread = newest + 1
            date = self.bar_date()
            self.on_signal(date, self.signal_row(newest, date))

    def notify_order(self, order: bt.Order) -> None:
        if order.status == order.Completed:
            ex = order.executed
            self._fills.append((ex.dt, order.data._name, ex.size, ex.price, ex.comm))
            if self._bar_dt and ex.dt == self._bar_dt[-1]:
                # filled at the close whose value is already recorded (cheat-on-close): at
                # the close price the trade moves the value by its commission only
                self._bar_value[-1] -= ex.comm
                self._bar_cash[-1] -= ex.size * ex.price + ex.comm
        elif order.status in (order.Margin, order.Rejected, order.Canceled, order.Expired):
            date = _to_date(order.created.dt)
            status = order.getstatusname()
            self.unfilled.append((date, order.data._name, status))
            log.warning("%s: order for %s of size %.6g not filled (%s)", date.date(),
                        order.data._name, order.created.size, status)

    # ----------------------------------------------------------------- results
    def equity(self) -> pd.Series:
        """V_t: the value after each bar's trades, at its close."""
        return pd.Series(self._bar_value, index=self._bar_index(), name="equity", dtype=float)

    def cash(self) -> pd.Series:
        """Cash after each bar's trades, at its close."""
        return pd.Series(self._bar_cash, index=self._bar_index(), name="cash", dtype=float)

    def returns(self) -> pd.Series:
        """r_t = V_t / V_{t-1} - 1 (V_{-1} = the starting cash) from bar `fill_lag` on."""
        v = self.equity()
        before = np.concatenate([[self.broker.startingcash], v.to_numpy()[:-1]])
        returns = pd.Series(v.to_numpy() / before - 1.0, index=v.index, name="returns")
        return returns.iloc[self.fill_lag:]

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


def date_numbers(dates: pd.DatetimeIndex) -> list[float]:
    """Dates as backtrader date numbers (what ``self.datetime[0]`` holds)."""
    return [bt.date2num(d) for d in dates.to_pydatetime()]


def _ticker_table(frame: pd.DataFrame | None, tickers: tuple[str, ...],
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
    return date_numbers(dates), values
