"""Time `run_portfolio_backtest`: 30 Dow stocks x 3 years, weekly rebalances, 10 bps.

Also times the data feeds alone (a strategy that does nothing) with `ArrayFeed` and with
backtrader's `PandasData`, the reason `strategies.feeds` exists.

    python benchmarks/bench_backtest.py [--data PATH] [--start 2021-01-01] [--end 2023-12-31]
                                        [--repeat 3]

Skips (exit 0, with a message) when the Dow 30 file is absent.
"""
from __future__ import annotations

import argparse
import logging
import os
import statistics
import time
from pathlib import Path

import numpy as np
import pandas as pd

log = logging.getLogger("bench_backtest")

DEFAULT_DATA = Path(os.environ.get(
    "STORM_BT_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")) \
    / "dj30_daily.csv.gz"


def timed(fn, repeat: int) -> list[float]:
    seconds = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        seconds.append(time.perf_counter() - started)
    return seconds


def pandas_frames(panel, start: str, end: str) -> dict[str, pd.DataFrame]:
    """Per-ticker OHLCV frames on the same total-return prices as `panel_feeds`."""
    adj = panel.field("adj_close").loc[start:end]
    factor = adj / panel.field("close").loc[start:end]
    fields = {f: panel.field(f).loc[start:end] for f in ("open", "high", "low", "volume")}
    return {t: pd.DataFrame({"open": fields["open"][t] * factor[t],
                             "high": fields["high"][t] * factor[t],
                             "low": fields["low"][t] * factor[t],
                             "close": adj[t], "volume": fields["volume"][t]})
            for t in panel.tickers}


def feed_only(panel, start: str, end: str, frames: dict[str, pd.DataFrame] | None) -> None:
    """A do-nothing strategy over every ticker's feed: the cost of delivering the bars.
    With `frames`, the feeds are backtrader's PandasData over them; else `panel_feeds`."""
    import backtrader as bt

    from strategies import panel_feeds

    cerebro = bt.Cerebro(stdstats=False)
    if frames is not None:
        for ticker, frame in frames.items():
            cerebro.adddata(bt.feeds.PandasData(dataname=frame), name=ticker)
    else:
        for feed in panel_feeds(panel, start, end):
            cerebro.adddata(feed)
    cerebro.addstrategy(bt.Strategy)
    cerebro.run()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--start", default="2021-01-01")
    parser.add_argument("--end", default="2023-12-31")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if not args.data.exists():
        log.info("SKIP bench_backtest: %s not found (set STORM_BT_SHARED_DATA or --data)",
                 args.data)
        return 0

    from storm_bt.data import load_panel
    from strategies import run_portfolio_backtest

    logging.getLogger("storm_bt").setLevel(logging.WARNING)
    logging.getLogger("strategies").setLevel(logging.WARNING)
    panel = load_panel(args.data)
    days = panel.dates[(panel.dates >= args.start) & (panel.dates <= args.end)]
    full = panel.mask[panel.dates.isin(days)].all(axis=0)
    listed = [t for t, ok in zip(panel.tickers, full) if ok]
    panel = panel.select(listed)
    rebalances = days[::5]
    rng = np.random.default_rng(0)
    weights = pd.DataFrame(rng.dirichlet(np.ones(len(listed)), size=len(rebalances)),
                           index=rebalances, columns=listed)

    result = {}
    seconds = timed(lambda: result.update(r=run_portfolio_backtest(
        panel, weights, args.start, args.end, cost_bps=10.0)), args.repeat)
    r = result["r"]
    log.info("backtest: %d stocks x %d days (%s .. %s), %d weekly rebalances, %d fills: "
             "median %.2f s, min %.2f s over %d runs", len(listed), len(days),
             days[0].date(), days[-1].date(), len(r.turnover), len(r.trades),
             statistics.median(seconds), min(seconds), args.repeat)
    frames = pandas_frames(panel, args.start, args.end)
    arrays = timed(lambda: feed_only(panel, args.start, args.end, None), args.repeat)
    pandas = timed(lambda: feed_only(panel, args.start, args.end, frames), args.repeat)
    log.info("feeds only (no-op strategy): ArrayFeed median %.2f s, PandasData median %.2f s "
             "(x%.1f)", statistics.median(arrays), statistics.median(pandas),
             statistics.median(pandas) / statistics.median(arrays))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
