"""Commission on traded value, the one place where a strategy's broker gets its costs.

    commission = rate * |size| * price,   rate = storm_bt.units.bps_to_fraction(cost_bps)

`SignalStrategy.start` installs `commission_info(rate, fractional)` on the broker for every
strategy of the package. ``fractional=True`` (`PortfolioStrategy`) also makes `getsize`
return cash / price as a float, so order sizing (sizers, ``order_target_*``) can hold any
fraction of a share and a book tracks its target weights exactly; ``fractional=False``
(`TradingStrategy`, whole shares) is backtrader's stock-like percentage commission.
"""
from __future__ import annotations

import backtrader as bt


class StockCommInfo(bt.CommInfoBase):
    """Stock-like commission info: a percentage of traded value.

    ``commission`` is the rate as a fraction of traded value (``percabs=True``): 10 bps is
    ``commission=0.001``.
    """

    params = (
        ("stocklike", True),
        ("commtype", bt.CommInfoBase.COMM_PERC),
        ("percabs", True),
    )


class FractionalCommInfo(StockCommInfo):
    """`StockCommInfo` with fractional sizes. A flat position is worth 0 whatever its price,
    so a feed whose price is NaN (a ticker not listed yet) never turns the portfolio value
    into NaN."""

    def getsize(self, price: float, cash: float) -> float:
        """The (fractional) number of shares that `cash` buys at `price`."""
        return self.p.leverage * (cash / price)

    def getvaluesize(self, size: float, price: float) -> float:
        return size * price if size else 0.0

    def profitandloss(self, size: float, price: float, newprice: float) -> float:
        return size * (newprice - price) * self.p.mult if size else 0.0


def commission_info(rate: float, fractional: bool) -> StockCommInfo:
    """The commission info charging `rate` (a fraction, e.g. 1e-4 for 1 bp) of traded value."""
    cls = FractionalCommInfo if fractional else StockCommInfo
    return cls(commission=float(rate))
