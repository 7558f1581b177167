"""`PortfolioStrategy`: trade a table of target weights in backtrader.

Execution model. The weights row dated t is decided at the close of t (see `SignalStrategy`)
and passes through the hook `target_weights(date, row)`; it is executed at the open of the
next bar t+1 (backtrader cheat-on-open: `next_open` sizes the orders with the open prices
at which they fill; no price of t+1 other than its open is used). With p_i the open of t+1,
q_i the shares held, h_i = q_i p_i and c = cost_bps / 10_000 (``self.cost``, see
`SignalStrategy`):

    V = cash + sum_i h_i                                (value at the open, before trading)
    E = V - c * sum_i |s w_i E - h_i|                   (value after paying commission)
    target shares q*_i = s w_i E / p_i,  order size q*_i - q_i (fractional shares)

so after the trade every name holds exactly s w_i of the book. s = 1 unless the targets need
more cash than the book has (net weight sum_i w_i >= 1 once commission is paid): then s < 1
is the largest scale that leaves CASH_RESERVE * V in cash, so no buy is ever refused for
cash (backtrader refuses an opening fill that takes cash below 0 even with checksubmit off,
so the buys are sized to stay funded; a fully invested book keeps 1e-9 of its value in cash
against float rounding). Sells are submitted before buys. A name that does not trade on t+1
(`tradable` 0: not listed yet, a day without a row, delisted) is not traded: its shares stay
as they are and its target weight is ignored (logged once per name). NaN weights mean 0;
names absent from the row are sold to 0.

Turnover of a rebalance = sum_i |q*_i - q_i| p_i / V (a full switch of the book counts 2),
indexed by the decision date, so the commission paid is c * turnover * V.

No leverage. The book never borrows: target weights whose net sum exceeds 1 are scaled by
the s above to a fully invested book, so 1.5 x the weights of a fully invested book ends at
the value of 1 x them (the same shares are bought, to float rounding). That is almost never what a
caller who returns such weights means, so the first such row logs a warning naming its
date and its sum (``target weights sum to 1.5 > 1 on 2020-03-02 ...``), and the end of the
run logs how many rows were scaled and the largest sum. A long-short book with a net sum
<= 1 (e.g. 1.3 long, 0.3 short) is traded as given.
"""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from storm_bt.errors import StormBtError
from strategies.base import SignalStrategy

log = logging.getLogger(__name__)

#: Fraction of the book kept in cash when the targets are fully invested (float rounding).
CASH_RESERVE = 1e-9
#: Net target weight above which a row asks for leverage (and is warned about): a fully
#: invested row sums to 1 up to float rounding.
LEVERAGE_TOLERANCE = 1e-6


class PortfolioStrategy(SignalStrategy):
    """Rebalance to target weights on each weights row; the hook is `target_weights`.

    Params:
        weights: DataFrame, rebalance date x ticker target weights (fractions of the book,
            negative = short), decided at the close of that date.
        cost_bps: commission in basis points of traded value (default 10).
    """

    params = (("weights", None), ("cost_bps", 10.0))
    signal_param = "weights"
    fill_lag = 1
    fractional_shares = True

    def __init__(self) -> None:
        super().__init__()
        self._pending: tuple[pd.Timestamp, np.ndarray] | None = None
        self._turnover: dict[pd.Timestamp, float] = {}
        self._ignored: set[str] = set()
        #: (decision date, net weight) of every row whose targets summed above 1
        self.levered: list[tuple[pd.Timestamp, float]] = []

    def start(self) -> None:
        if not self.cerebro.p.cheat_on_open:
            raise StormBtError(f"{type(self).__name__} fills at the next open: run it in "
                               "bt.Cerebro(cheat_on_open=True) (run_portfolio_backtest does)")
        super().start()
        self.broker.set_checksubmit(False)
        self._has_tradable = [hasattr(d.lines, "tradable") for d in self.datas]

    # -------------------------------------------------------------------- hook
    def target_weights(self, date: pd.Timestamp, signal_row: pd.Series) -> pd.Series | None:
        """Target weights decided at the close of `date` from the weights row `signal_row`
        (index: tickers), or None to leave the book as it is. Override to change the
        decision; this default trades the row as given."""
        return signal_row

    # ---------------------------------------------------------------- plumbing
    def on_signal(self, date: pd.Timestamp, signal_row: pd.Series) -> None:
        target = self.target_weights(date, signal_row)
        if target is None:
            return
        if not isinstance(target, pd.Series):
            raise StormBtError(f"{type(self).__name__}.target_weights on {date.date()} returned "
                               f"{type(target).__name__}; return a pd.Series (ticker -> weight) "
                               "or None")
        unknown = [str(t) for t in target.index if t not in self.tickers]
        if unknown:
            raise StormBtError(f"{type(self).__name__}.target_weights on {date.date()}: "
                               f"unknown ticker(s) {', '.join(unknown[:10])}")
        w = target.reindex(list(self.tickers)).to_numpy(dtype=np.float64, na_value=np.nan)
        w = np.nan_to_num(w, nan=0.0, posinf=np.inf, neginf=-np.inf)
        if not np.isfinite(w).all():
            bad = self.tickers[int(np.flatnonzero(~np.isfinite(w))[0])]
            raise StormBtError(f"{type(self).__name__}: infinite target weight for {bad} "
                               f"on {date.date()}")
        self._warn_leverage(date, w)
        self._pending = (date, w)

    def _warn_leverage(self, date: pd.Timestamp, w: np.ndarray) -> None:
        net = float(w.sum())
        if net <= 1.0 + LEVERAGE_TOLERANCE:
            return
        if not self.levered:
            log.warning("%s: target weights sum to %.6g > 1; %s does not borrow, so the book "
                        "is scaled to be fully invested (%.6g x these weights); further rows "
                        "are counted at the end of the run", date.date(), net,
                        type(self).__name__, 1.0 / net)
        self.levered.append((date, net))

    def stop(self) -> None:
        if len(self.levered) > 1:
            worst = max(self.levered, key=lambda row: row[1])
            log.warning("%d rows of target weights summed above 1 (the largest %.6g, on %s); "
                        "each was scaled to a fully invested book", len(self.levered), worst[1],
                        worst[0].date())
        super().stop()

    def next_open(self) -> None:
        if self._pending is None:
            return
        date, w = self._pending
        self._pending = None
        self._rebalance(date, w)

    def _rebalance(self, date: pd.Timestamp, w: np.ndarray) -> None:
        datas = self.datas
        p = np.array([d.open[0] for d in datas])
        tradable = np.array([(d.tradable[0] > 0) if has else bool(np.isfinite(d.open[0]))
                             for d, has in zip(datas, self._has_tradable)])
        tradable &= np.isfinite(p) & (p > 0)
        q = np.array([self.getposition(d).size for d in datas], dtype=np.float64)
        h = np.where(q != 0, q * p, 0.0)
        value = self.broker.getcash() + h.sum()
        self._log_ignored(date, w, tradable)
        w = np.where(tradable, w, 0.0)
        scale, after = _book_after_costs(value, w, h, tradable, self.cost)

        delta = np.zeros_like(q)
        delta[tradable] = scale * w[tradable] * after / p[tradable] - q[tradable]
        for i in np.flatnonzero(delta < 0):
            self.sell(data=datas[i], size=float(-delta[i]))
        for i in np.flatnonzero(delta > 0):
            self.buy(data=datas[i], size=float(delta[i]))
        self._turnover[date] = float(np.abs(delta * np.where(tradable, p, 0.0)).sum() / value)

    def _log_ignored(self, date: pd.Timestamp, w: np.ndarray, tradable: np.ndarray) -> None:
        for i in np.flatnonzero(~tradable & (w != 0)):
            name = self.tickers[i]
            if name not in self._ignored:
                self._ignored.add(name)
                log.warning("%s: target weight %.4g for %s ignored: it does not trade on the "
                            "next bar (not listed or no price); further cases not logged",
                            date.date(), w[i], name)

    # ----------------------------------------------------------------- results
    def turnover(self) -> pd.Series:
        """Traded value / book value of each executed rebalance, by decision date."""
        return pd.Series(self._turnover, name="turnover", dtype=float).rename_axis("date")


def _book_after_costs(value: float, w: np.ndarray, h: np.ndarray, tradable: np.ndarray,
                      rate: float) -> tuple[float, float]:
    """(s, E): the funding scale and the book value after commission (module docstring).

    E = V - rate * sum_tradable |s w E - h| is a contraction in E (factor rate * sum|w| < 1
    for any sane book), and s = min(1, (E - F - reserve) / (E sum w)) where F is the value
    held in names that do not trade; the pair is iterated to a fixed point.
    """
    fixed = h[~tradable].sum()
    net = w[tradable].sum()
    reserve = CASH_RESERVE * abs(value)
    scale, after = 1.0, value
    for _ in range(200):
        new_after = value - rate * np.abs(scale * w[tradable] * after - h[tradable]).sum()
        new_scale = 1.0
        if net > 0 and new_after * (1.0 - net) - fixed < reserve:
            new_scale = max(0.0, (new_after - fixed - reserve) / (net * new_after))
        done = (abs(new_after - after) <= 1e-14 * abs(value)
                and abs(new_scale - scale) <= 1e-15)
        scale, after = new_scale, new_after
        if done:
            break
    return scale, after
