"""Commission on traded value, with fractional shares.

    commission = rate * |size| * price,   rate = cost_bps / 10_000

`getsize` returns cash / price as a float, so order sizing (sizers, ``order_target_*``) can
hold any fraction of a share and a book tracks its target weights exactly.
"""
from __future__ import annotations

import backtrader as bt


class FractionalCommInfo(bt.CommInfoBase):
    """Stock-like commission info: a percentage of traded value, fractional sizes.

    ``commission`` is the rate as a fraction of traded value (``percabs=True``): 10 bps is
    ``commission=0.001``. A flat position is worth 0 whatever its price, so a feed whose
    price is NaN (a ticker not listed yet) never turns the portfolio value into NaN.
    """

    params = (
        ("stocklike", True),
        ("commtype", bt.CommInfoBase.COMM_PERC),
        ("percabs", True),
    )

    def getsize(self, price: float, cash: float) -> float:
        """The (fractional) number of shares that `cash` buys at `price`."""
        return self.p.leverage * (cash / price)

    def getvaluesize(self, size: float, price: float) -> float:
        return size * price if size else 0.0

    def profitandloss(self, size: float, price: float, newprice: float) -> float:
        return size * (newprice - price) * self.p.mult if size else 0.0


def fractional_commission(cost_bps: float) -> FractionalCommInfo:
    """The commission info charging `cost_bps` basis points of traded value."""
    return FractionalCommInfo(commission=cost_bps / 1e4)
