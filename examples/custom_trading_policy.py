"""Write your own buy/hold/sell rule for one stock by subclassing `TradingStrategy`.

`TrendBand` overrides the single hook `decide(signal, position)`. Its signal on day t is the
pair (adjusted close p_t, its 50-day moving average m_t), both known at the close of t:

    BUY   if p_t > m_t (1 + band)          (all-in, whole shares)
    SELL  if p_t < m_t (1 - band)          (everything)
    HOLD  otherwise

Everything else is inherited: orders fill at the same close (cheat-on-close), commission in
basis points, BUY when invested and SELL when flat are holds, the last day only marks the
book, and the equity / trades / actions records. A rule needs no subclass when it is a plain
``policy(signal, position) -> Action`` (as `storm_bt.trading.policies.BuyAndHold`, the
comparison here): pass it as ``policy``; the same object also runs in the RL environment
(`storm_bt.trading.env.rollout`) with identical accounting.

    python examples/custom_trading_policy.py [--data embedded] [--ticker AAPL]
                                             [--start 2020-01-02] [--end 2022-12-28]
                                             [--band 0.02] [--cost-bps 1]
"""
from __future__ import annotations

import argparse
import logging

import numpy as np
import pandas as pd

from reports import trading_metrics
from storm_bt.data import load_panel
from storm_bt.trading import Action
from storm_bt.trading.policies import BuyAndHold
from strategies import TradingResult, TradingStrategy, run_trading_backtest

log = logging.getLogger("custom_trading_policy")


class TrendBand(TradingStrategy):
    """Long above the moving average plus a band, flat below it minus the band."""

    params = (("band", 0.02),)

    def decide(self, signal: np.ndarray, position: float) -> Action:
        price, average = float(signal[0]), float(signal[1])
        if not np.isfinite(average):
            return Action.HOLD  # not enough history yet
        if price > average * (1 + self.p.band):
            return Action.BUY
        if price < average * (1 - self.p.band):
            return Action.SELL
        return Action.HOLD


def trend_signals(adj_close: pd.Series, window: int = 50) -> pd.DataFrame:
    """date x (price, moving average); row t uses prices up to t only."""
    return pd.DataFrame({"price": adj_close,
                         "average": adj_close.rolling(window, min_periods=window).mean()})


def main(argv: list[str] | None = None) -> dict[str, TradingResult]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="embedded")
    p.add_argument("--ticker", default="AAPL")
    p.add_argument("--start", default="2020-01-02")
    p.add_argument("--end", default="2022-12-28")
    p.add_argument("--band", type=float, default=0.02)
    p.add_argument("--cost-bps", type=float, default=1.0)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")

    panel = load_panel(args.data).until(args.end)
    signals = trend_signals(panel.field("adj_close")[args.ticker]).loc[args.start:]
    ours = run_trading_backtest(panel, args.ticker, signals, None, args.start, args.end,
                                cost_bps=args.cost_bps, strategy_cls=TrendBand, band=args.band)
    hold = run_trading_backtest(panel, args.ticker, signals, BuyAndHold(), args.start, args.end,
                                cost_bps=args.cost_bps)
    results = {"TrendBand": ours, "buy-and-hold": hold}
    for name, result in results.items():
        m = trading_metrics(pd.Series(result.values))
        log.info("%-12s %s: APY %6.2f%%  CW %.3f  ASR %5.2f  MDD %5.2f%%  AVO %5.2f%%  %d trades",
                 name, args.ticker, 100 * m["APY"], m["CW"], m["ASR"], 100 * m["MDD"],
                 100 * m["AVO"], len(result.trades))
    return results


if __name__ == "__main__":
    main()
