"""Unit conversions used across stages (one home each).

Costs are quoted in basis points of traded value: 1 bp = 1e-4, so a commission of c bps
costs ``c / 1e4`` of every traded dollar.
"""
from __future__ import annotations

import math

from storm_bt.errors import StormBtError

BPS = 1e4


def bps_to_fraction(bps: float, name: str = "--cost-bps") -> float:
    """A cost in basis points as a fraction of traded value; negative, non-finite or at
    least the whole traded value (10000 bps, where a sale would cost more than it brings)
    is an error."""
    value = float(bps)
    if not math.isfinite(value) or value < 0:
        raise StormBtError(f"{name} {bps}: use a cost of 0 basis points or more")
    if value >= BPS:
        raise StormBtError(f"{name} {bps}: a cost of {value / BPS:.0%} of the traded value "
                           "would leave nothing of a sale; use fewer than 10000 basis points "
                           "(10 bps is 0.1%)")
    return value / BPS
