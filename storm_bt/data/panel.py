"""`Panel`: daily prices as a dates x tickers x fields cube with a validity mask.

The calendar is the union of all tickers' trading days (STORM_SPEC D20). Inside a ticker's
own first..last date, a day it has no row for is forward-filled and marked invalid in
`mask`; before its first and after its last row the values are NaN and `mask` is False.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from storm_bt.errors import StormBtError

#: Every field a panel may hold, in this order.
FIELDS: tuple[str, ...] = ("open", "high", "low", "close", "adj_close", "volume")
PRICE_FIELDS: tuple[str, ...] = ("open", "high", "low", "close", "adj_close")
OHLCV: tuple[str, ...] = ("open", "high", "low", "close", "volume")


@dataclass(frozen=True)
class Panel:
    """Prices on a shared calendar.

    Attributes:
        dates: sorted, unique trading days (the union calendar).
        tickers: the stock axis, in a fixed order.
        fields: the field axis, an ordered subset of `FIELDS`; always holds
            `close` and `adj_close`.
        values: float64 array of shape (len(dates), len(tickers), len(fields)).
        mask: bool array (len(dates), len(tickers)): True where the ticker has a real
            observation that day.
        source: a short description of where the data came from (for messages).
    """

    dates: pd.DatetimeIndex
    tickers: tuple[str, ...]
    fields: tuple[str, ...]
    values: np.ndarray
    mask: np.ndarray
    source: str = "<memory>"

    def __post_init__(self) -> None:
        shape = (len(self.dates), len(self.tickers), len(self.fields))
        if self.values.shape != shape:
            raise ValueError(f"values has shape {self.values.shape}, expected {shape}")
        if self.mask.shape != shape[:2]:
            raise ValueError(f"mask has shape {self.mask.shape}, expected {shape[:2]}")
        for name in ("close", "adj_close"):
            if name not in self.fields:
                raise ValueError(f"a panel needs the field {name!r}")

    # ----------------------------------------------------------------- access
    @property
    def has_ohlcv(self) -> bool:
        """True when open, high, low, close and volume are all present."""
        return all(f in self.fields for f in OHLCV)

    def field(self, name: str) -> pd.DataFrame:
        """One field as a date x ticker DataFrame (a copy)."""
        if name not in self.fields:
            raise StormBtError(
                f"{self.source}: field {name!r} is not in the data (fields: {', '.join(self.fields)})"
            )
        k = self.fields.index(name)
        return pd.DataFrame(
            self.values[:, :, k].copy(), index=self.dates, columns=list(self.tickers)
        )

    def array(self, name: str) -> np.ndarray:
        """One field as a (dates, tickers) float64 array view."""
        return self.values[:, :, self.fields.index(name)]

    def returns(self) -> pd.DataFrame:
        """Daily total returns r_t = adj_close_t / adj_close_{t-1} - 1 (NaN where unknown)."""
        adj = self.array("adj_close")
        out = np.full_like(adj, np.nan)
        out[1:] = adj[1:] / adj[:-1] - 1.0
        return pd.DataFrame(out, index=self.dates, columns=list(self.tickers))

    # ---------------------------------------------------------------- slicing
    def select(self, tickers: list[str] | tuple[str, ...]) -> "Panel":
        """The sub-panel of `tickers`, in the order given; unknown tickers are an error."""
        tickers = list(dict.fromkeys(tickers))
        unknown = [t for t in tickers if t not in self.tickers]
        if unknown:
            sample = ", ".join(self.tickers[:12]) + (" ..." if len(self.tickers) > 12 else "")
            raise StormBtError(
                f"{self.source}: unknown ticker(s) {', '.join(unknown)}; "
                f"the data has {len(self.tickers)} tickers ({sample})"
            )
        idx = [self.tickers.index(t) for t in tickers]
        return Panel(
            self.dates, tuple(tickers), self.fields,
            self.values[:, idx, :], self.mask[:, idx], self.source,
        )

    def until(self, end: str | pd.Timestamp) -> "Panel":
        """The panel cut after `end` (inclusive): what a user at date `end` could know."""
        n = int(self.dates.searchsorted(pd.Timestamp(end), side="right"))
        return Panel(
            self.dates[:n], self.tickers, self.fields,
            self.values[:n], self.mask[:n], self.source,
        )

    def since(self, start: str | pd.Timestamp) -> "Panel":
        """The panel from `start` (inclusive) on."""
        n = int(self.dates.searchsorted(pd.Timestamp(start), side="left"))
        return Panel(
            self.dates[n:], self.tickers, self.fields,
            self.values[n:], self.mask[n:], self.source,
        )

    # ------------------------------------------------------------ fingerprint
    def fingerprint(self) -> str:
        """SHA-256 (first 16 hex digits) of dates, tickers, fields, values and mask."""
        h = hashlib.sha256()
        h.update(np.asarray(self.dates.asi8).tobytes())
        h.update("\x1f".join(self.tickers).encode())
        h.update("\x1f".join(self.fields).encode())
        h.update(np.ascontiguousarray(self.values).tobytes())
        h.update(np.ascontiguousarray(self.mask).tobytes())
        return h.hexdigest()[:16]

    def describe(self) -> dict:
        """A small summary for run records."""
        return {
            "source": self.source,
            "fingerprint": self.fingerprint(),
            "tickers": list(self.tickers),
            "fields": list(self.fields),
            "first_date": str(self.dates[0].date()) if len(self.dates) else None,
            "last_date": str(self.dates[-1].date()) if len(self.dates) else None,
            "n_dates": len(self.dates),
        }


def panel_from_long(frame: pd.DataFrame, source: str) -> Panel:
    """Build a `Panel` from a validated long frame (date, ticker, fields...).

    The frame must already be validated (see `storm_bt.data.validate`): unique (date, ticker),
    positive prices, no NaN. Values inside a ticker's first..last range on days it lacks
    are forward-filled and masked.
    """
    fields = tuple(f for f in FIELDS if f in frame.columns)
    dates = pd.DatetimeIndex(np.unique(frame["date"].to_numpy()))
    tickers_arr, tickers = pd.factorize(frame["ticker"], sort=True)
    d_idx = dates.searchsorted(frame["date"].to_numpy())
    values = np.full((len(dates), len(tickers), len(fields)), np.nan)
    values[d_idx, tickers_arr, :] = frame[list(fields)].to_numpy(dtype=np.float64, copy=True)
    mask = np.zeros((len(dates), len(tickers)), dtype=bool)
    mask[d_idx, tickers_arr] = True
    _fill_inside_listing(values, mask, fields)
    return Panel(dates, tuple(str(t) for t in tickers), fields, values, mask, source)


def _fill_inside_listing(values: np.ndarray, mask: np.ndarray, fields: tuple[str, ...]) -> None:
    """Forward-fill, in place, each ticker's values on its missing days between its first
    and last observation. Volume on a filled day is set to 0 (no trading seen)."""
    vol = fields.index("volume") if "volume" in fields else None
    for s in range(mask.shape[1]):
        obs = np.flatnonzero(mask[:, s])
        if obs.size == 0 or obs[-1] - obs[0] + 1 == obs.size:
            continue
        first, last = obs[0], obs[-1]
        span = np.arange(first, last + 1)
        source_row = np.maximum.accumulate(np.where(mask[first:last + 1, s], span, 0))
        values[first:last + 1, s, :] = values[source_row, s, :]
        if vol is not None:
            filled = span[~mask[first:last + 1, s]]
            values[filled, s, vol] = 0.0
