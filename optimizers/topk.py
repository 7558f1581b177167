"""Top-k with dropout (the STORM paper's portfolio, STORM_SPEC section 5, D9 fixed).

Each rebalance, with the names ranked by predicted return (only tradable names count):

    keep  = previous holdings ∩ today's top k
    if |keep| < k − n_drop: add the best-ranked previous holdings until |keep| = k − n_drop
    fill the remaining k − |keep| places with the best-ranked names not in keep

so at most n_drop names are replaced per rebalance (a held name that cannot be traded any
more is always sold). D9 fix: the book is equal weight 1/k and fully invested (the official
code sums the k returns, 5x leverage); costs are paid by the engine on the traded value.
"""
from __future__ import annotations

import numpy as np


class TopkDropout:
    """Equal weight on k names, replacing at most `n_drop` of them per rebalance."""

    name = "topk"
    needs_risk_model = False

    def __init__(self, k: int = 5, n_drop: int = 3) -> None:
        if k < 1 or not 0 <= n_drop <= k:
            raise ValueError(f"need k >= 1 and 0 <= n_drop <= k, got k={k}, n_drop={n_drop}")
        self.k, self.n_drop = k, n_drop

    def weights(self, mu: np.ndarray, risk, tradable: np.ndarray, w_prev: np.ndarray) -> np.ndarray:
        """Target weights (N,): 1/k on the chosen names (1/n on all n tradable if n < k)."""
        mu = np.asarray(mu, dtype=np.float64)
        tradable = np.asarray(tradable, dtype=bool) & np.isfinite(mu)
        n = len(mu)
        out = np.zeros(n)
        if not tradable.any():
            return out
        # Ranked best first; ties broken by column order (stable sort).
        ranked = [i for i in np.argsort(-np.where(tradable, mu, -np.inf), kind="stable")
                  if tradable[i]]
        k = min(self.k, len(ranked))
        top = set(ranked[:k])
        held = [i for i in ranked if np.nan_to_num(w_prev[i]) > 0]  # tradable holdings, best first
        if not held:
            chosen = ranked[:k]
        else:
            keep = [i for i in held if i in top]
            for i in held:
                if len(keep) >= k - self.n_drop:
                    break
                if i not in keep:
                    keep.append(i)
            chosen = keep + [i for i in ranked if i not in keep][: k - len(keep)]
        out[chosen] = 1.0 / len(chosen)
        return out
