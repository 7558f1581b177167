"""How much a run's book moves: a check that a cost-aware optimiser has not frozen.

For target weights w_0 .. w_R (one row per rebalance), the one-way turnover of rebalance r
is τ_r = ½‖w_r − w_{r−1}‖₁ (the fraction of the book traded), and rebalance r changes the
book when τ_r > `threshold`. A run whose fraction of changing rebalances is below `frozen_below`
has, in effect, held one book over the test period.
"""
from __future__ import annotations

import numpy as np
import pandas as pd


def book_change_summary(weights: pd.DataFrame, threshold: float = 1e-3,
                        frozen_below: float = 0.1) -> dict:
    """Counts of the rebalances that change the book (see the module docstring).

    Returns a dict: rebalances (R, the rows after the first), changed (how many have
    τ_r > threshold), fraction_changed, mean_turnover (mean τ_r), last_change (the last
    date that changed the book, or None) and frozen (fraction_changed < frozen_below).
    """
    w = np.nan_to_num(weights.to_numpy(dtype=np.float64))
    turnover = 0.5 * np.abs(np.diff(w, axis=0)).sum(axis=1)
    changed = turnover > threshold
    rebalances = len(turnover)
    fraction = float(changed.mean()) if rebalances else 0.0
    last = weights.index[1:][changed][-1] if changed.any() else None
    return {"rebalances": rebalances, "changed": int(changed.sum()),
            "fraction_changed": fraction,
            "mean_turnover": float(turnover.mean()) if rebalances else 0.0,
            "last_change": None if last is None else str(pd.Timestamp(last).date()),
            "frozen": bool(rebalances > 0 and fraction < frozen_below)}
