"""Tests of strategies/: backtrader's book against an independent numpy replay, no look-ahead,
listing/delisting, the Sharpe analyzer, and the custom-strategy example.

The replay follows the execution model documented in strategies/portfolio.py, written here
from scratch: the weights row dated t is decided at the close of t and filled at the open of
the next bar; on total-return prices (open * adj_close / close, close = adj_close) the book
after the trade holds w_i of its value E, where E solves E = V - c * sum_i |w_i E - h_i|
(V = value at the open, h_i = value held in name i); equity = cash + sum shares x close.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import sys
from pathlib import Path

import backtrader as bt
import numpy as np
import pandas as pd
import pytest
from scipy.optimize import brentq

from storm_bt.data import Panel
from storm_bt.errors import StormBtError
from strategies import (PortfolioStrategy, SignalStrategy, panel_feeds,
                        run_portfolio_backtest)

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "custom_strategy.py"
CASH = 1_000_000.0


# ---------------------------------------------------------------- helpers
def replay(panel: Panel, weights: pd.DataFrame, start: str, end: str, cash: float,
           cost_bps: float) -> tuple[pd.Series, pd.Series]:
    """Equity and turnover of `weights` by the documented execution model, in numpy."""
    sub = panel.select(list(weights.columns)).since(start).until(end)
    close = sub.array("adj_close")
    if "open" in sub.fields:
        opens = sub.array("open") * sub.array("adj_close") / sub.array("close")
    else:
        opens = close
    rate = cost_bps / 1e4
    shares = np.zeros(len(sub.tickers))
    equity, turnover = [], {}
    last_row, pending = -1, None
    for t, day in enumerate(sub.dates):
        if pending is not None:
            decided, w = pending
            price = opens[t]
            held = shares * price
            value = cash + held.sum()
            after = brentq(lambda e: e - value + rate * np.abs(w * e - held).sum(), 0.0, value,
                           xtol=1e-9, rtol=1e-15)
            traded = w * after / price - shares
            cash -= traded @ price + rate * np.abs(traded) @ price
            shares = shares + traded
            turnover[decided] = np.abs(traded) @ price / value
            pending = None
        equity.append(cash + shares @ close[t])
        row = int(weights.index.searchsorted(day, side="right")) - 1
        if row > last_row:
            last_row = row
            pending = (weights.index[row], np.nan_to_num(weights.iloc[row].to_numpy(float)))
    return (pd.Series(equity, index=sub.dates, name="equity"),
            pd.Series(turnover, name="turnover", dtype=float))


def mixed_weights(dates: pd.DatetimeIndex, tickers: list[str], seed: int = 0) -> pd.DataFrame:
    """Random rows: even rows fully invested, odd rows 90% invested with a zero and a short."""
    rng = np.random.default_rng(seed)
    rows = rng.dirichlet(np.ones(len(tickers)), size=len(dates))
    rows[1::2] *= 0.9
    rows[1::2, 0] = 0.0
    rows[1::2, -1] = -0.05
    return pd.DataFrame(rows, index=dates, columns=tickers)


def trading_days(panel: Panel, start: str, end: str) -> pd.DatetimeIndex:
    return panel.dates[(panel.dates >= start) & (panel.dates <= end)]


def load_example():
    spec = importlib.util.spec_from_file_location("custom_strategy_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # backtrader looks strategy classes up by module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def dj10(dj30_panel) -> Panel:
    return dj30_panel.select(list(dj30_panel.tickers[:10]))


# ------------------------------------------------------- reconciliation
def test_equity_reconciles_with_numpy_replay_on_ohlc_data(dj10):
    start, end = "2019-01-01", "2019-12-31"
    weights = mixed_weights(trading_days(dj10, start, end)[::5], list(dj10.tickers))
    result = run_portfolio_backtest(dj10, weights, start, end, cash=CASH, cost_bps=10.0)
    equity, turnover = replay(dj10, weights, start, end, CASH, 10.0)
    pd.testing.assert_index_equal(result.equity.index, equity.index, check_names=False)
    np.testing.assert_allclose(result.equity.to_numpy(), equity.to_numpy(), rtol=1e-6, atol=0)
    pd.testing.assert_index_equal(result.turnover.index, turnover.index, check_names=False)
    np.testing.assert_allclose(result.turnover.to_numpy(), turnover.to_numpy(), rtol=1e-6)
    # Commission paid is 10 bps of every fill's traded value.
    traded = (result.trades["size"].abs() * result.trades["price"]).to_numpy()
    np.testing.assert_allclose(result.trades["commission"].to_numpy(), 1e-3 * traded, rtol=1e-12)
    assert equity.iloc[-1] != pytest.approx(CASH, rel=1e-3)  # the book really moved


def test_equity_reconciles_with_numpy_replay_on_close_only_data(embedded_panel):
    panel = embedded_panel.select(list(embedded_panel.tickers[:10]))
    start, end = "2021-01-01", "2021-12-31"
    weights = mixed_weights(trading_days(panel, start, end)[::5], list(panel.tickers), seed=1)
    result = run_portfolio_backtest(panel, weights, start, end, cash=CASH, cost_bps=10.0)
    equity, _ = replay(panel, weights, start, end, CASH, 10.0)
    np.testing.assert_allclose(result.equity.to_numpy(), equity.to_numpy(), rtol=1e-6, atol=0)
    # Close-only data fills at the decision-independent open = adj close of the fill day.
    fills = result.trades.iloc[0]
    adj = panel.field("adj_close")
    assert fills["price"] == pytest.approx(adj.loc[fills["date"], fills["ticker"]], rel=1e-12)


def test_zero_cost_equity_is_the_turnover_free_value(dj10):
    """With no commission the value carries over every rebalance untouched: between two
    fills, equity = value at the last fill x sum_i w_i close_i / open_i(fill day) + cash."""
    start, end = "2019-01-01", "2019-12-31"
    days = trading_days(dj10, start, end)
    weights = mixed_weights(days[::10], list(dj10.tickers), seed=2)
    result = run_portfolio_backtest(dj10, weights, start, end, cash=CASH, cost_bps=0.0)
    adj = dj10.field("adj_close").loc[days]
    opens = (dj10.field("open") * dj10.field("adj_close") / dj10.field("close")).loc[days]

    expected, value, w, entry = [], CASH, None, None
    fill_days = {days[days.get_loc(d) + 1]: d for d in weights.index if d < days[-1]}
    for day in days:
        if day in fill_days:
            if w is not None:
                value *= 1 - w.sum() + (w * opens.loc[day] / entry).sum()
            w, entry = weights.loc[fill_days[day]], opens.loc[day]
        expected.append(value if w is None else
                        value * (1 - w.sum() + (w * adj.loc[day] / entry).sum()))
    np.testing.assert_allclose(result.equity.to_numpy(), expected, rtol=1e-6)
    assert (result.trades["commission"] == 0).all()
    costly = run_portfolio_backtest(dj10, weights, start, end, cash=CASH, cost_bps=10.0)
    assert costly.equity.iloc[-1] < result.equity.iloc[-1]


# --------------------------------------------------------- no look-ahead
def test_weights_after_a_date_never_change_the_book_before_they_trade(dj10):
    start, end = "2019-01-01", "2019-12-31"
    days = trading_days(dj10, start, end)
    weights = mixed_weights(days[::5], list(dj10.tickers))
    cut = days[120]
    perturbed = weights.copy()
    later = perturbed.index > cut
    perturbed.loc[later] = mixed_weights(perturbed.index[later], list(dj10.tickers), seed=9).values
    base = run_portfolio_backtest(dj10, weights, start, end, cost_bps=10.0).equity
    moved = run_portfolio_backtest(dj10, perturbed, start, end, cost_bps=10.0).equity
    through = days[121]  # the bar after the cut: no row dated after `cut` can have traded
    pd.testing.assert_series_equal(base.loc[:through], moved.loc[:through])
    assert not np.allclose(base.loc[through:].to_numpy(), moved.loc[through:].to_numpy())


class _SignalLog(SignalStrategy):
    """Records (bar date, signal row date) for every signal handed out."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[pd.Timestamp, pd.Timestamp]] = []

    def on_signal(self, date, signal_row):
        self.seen.append((date, signal_row.name))


def test_a_signal_is_handed_out_at_the_first_close_on_or_after_its_date(dj10):
    days = trading_days(dj10, "2019-03-01", "2019-03-29")
    saturday = pd.Timestamp("2019-03-09")
    signal_dates = pd.DatetimeIndex([days[0], days[1], saturday, days[-1] + pd.Timedelta(days=3)])
    signals = pd.DataFrame(1.0, index=signal_dates, columns=list(dj10.tickers))
    cerebro = bt.Cerebro(stdstats=False)
    for feed in panel_feeds(dj10, days[0], days[-1]):
        cerebro.adddata(feed)
    cerebro.addstrategy(_SignalLog, signals=signals)
    seen = cerebro.run()[0].seen
    monday = days[days.searchsorted(saturday)]
    assert [bar for bar, _ in seen] == [days[0], days[1], monday]
    assert all(bar >= signal for bar, signal in seen)  # never a row dated after the bar


# ------------------------------------------------- listing and delisting
def test_a_ticker_is_not_bought_before_it_lists(dj30_panel):
    panel = dj30_panel.select(["AAPL", "KO", "DOW", "JPM"])  # DOW lists on 2019-03-20
    start, end = "2019-01-02", "2019-06-28"
    days = trading_days(panel, start, end)
    weights = pd.DataFrame(0.25, index=days[::5], columns=list(panel.tickers))
    result = run_portfolio_backtest(panel, weights, start, end, cost_bps=10.0)
    assert np.isfinite(result.equity).all()
    dow = result.trades[result.trades["ticker"] == "DOW"]
    first_decision = weights.index[weights.index >= pd.Timestamp("2019-03-19")][0]
    assert dow["date"].min() == days[days.searchsorted(first_decision, side="right")]
    waiting = slice("2019-01-10", "2019-03-18")
    before = result.cash.loc[waiting] / result.equity.loc[waiting]
    np.testing.assert_allclose(before.to_numpy(), 0.25, atol=0.03)  # DOW's weight stays in cash


def test_a_delisted_ticker_keeps_its_last_value_and_is_not_traded(dj10):
    start, end = "2019-01-01", "2019-06-28"
    gone = pd.Timestamp("2019-03-15")
    values, mask = dj10.values.copy(), dj10.mask.copy()
    after = dj10.dates > gone
    values[after, 0, :] = np.nan  # AAPL "delists" after `gone`
    mask[after, 0] = False
    panel = dataclasses.replace(dj10, values=values, mask=mask)
    days = trading_days(panel, start, end)
    weights = pd.DataFrame(0.1, index=days[::5], columns=list(panel.tickers))
    result = run_portfolio_backtest(panel, weights, start, end, cost_bps=10.0)
    aapl = result.trades[result.trades["ticker"] == panel.tickers[0]]
    assert aapl["date"].max() <= gone and np.isfinite(result.equity).all()
    shares = aapl["size"].sum()
    last_close = panel.field("adj_close").loc[gone, panel.tickers[0]]
    others = [t for t in panel.tickers if t != panel.tickers[0]]
    held = result.trades[result.trades["ticker"].isin(others)]
    end_day = days[-1]
    book = sum(held[held["ticker"] == t]["size"].sum() * panel.field("adj_close").loc[end_day, t]
               for t in others)
    assert result.equity.loc[end_day] == pytest.approx(
        result.cash.loc[end_day] + book + shares * last_close, rel=1e-9)


class _EveryOtherRow(PortfolioStrategy):
    """Skips the rebalance on odd-numbered weight rows (target_weights returns None)."""

    def __init__(self) -> None:
        super().__init__()
        self.rows_seen = 0

    def target_weights(self, date, signal_row):
        self.rows_seen += 1
        return signal_row if self.rows_seen % 2 == 1 else None


def test_target_weights_none_leaves_the_book_untouched(dj10):
    start, end = "2019-01-01", "2019-06-28"
    days = trading_days(dj10, start, end)
    weights = mixed_weights(days[::5], list(dj10.tickers))
    result = run_portfolio_backtest(dj10, weights, start, end, strategy_cls=_EveryOtherRow)
    kept = weights.iloc[::2]
    assert list(result.turnover.index) == [d for d in kept.index if d < days[-1]]
    equity, _ = replay(dj10, kept, start, end, 1_000_000.0, 10.0)
    # Only the kept rows trade: the replay of them alone gives the same book.
    np.testing.assert_allclose(result.equity.to_numpy(), equity.to_numpy(), rtol=1e-6)


# -------------------------------------------------------------- plumbing
def test_sharpe_is_the_annualised_daily_sharpe_of_the_equity(dj10):
    start, end = "2019-01-01", "2019-12-31"
    weights = mixed_weights(trading_days(dj10, start, end)[::5], list(dj10.tickers))
    result = run_portfolio_backtest(dj10, weights, start, end, cash=CASH)
    equity = result.equity.to_numpy()
    daily = equity / np.concatenate([[CASH], equity[:-1]]) - 1.0  # day one against the cash
    assert result.sharpe == pytest.approx(daily.mean() / daily.std() * np.sqrt(252), rel=1e-9)


def test_unknown_weight_columns_are_a_user_error(dj10):
    weights = pd.DataFrame(0.5, index=[dj10.dates[-30]], columns=["AAPL", "NOPE"])
    with pytest.raises(StormBtError, match="NOPE"):
        run_portfolio_backtest(dj10, weights, dj10.dates[-40], dj10.dates[-1])


def test_portfolio_strategy_needs_cheat_on_open(dj10):
    cerebro = bt.Cerebro(stdstats=False)
    for feed in panel_feeds(dj10, "2019-01-01", "2019-01-31"):
        cerebro.adddata(feed)
    weights = pd.DataFrame(0.1, index=[pd.Timestamp("2019-01-02")], columns=list(dj10.tickers))
    cerebro.addstrategy(PortfolioStrategy, weights=weights)
    with pytest.raises(StormBtError, match="cheat_on_open"):
        cerebro.run()


def test_strategies_import_no_model_or_optimizer_stack():
    import subprocess
    code = ("import sys, strategies; bad = [m for m in ('torch', 'cvxpy', 'storm_bt.models', "
            "'optimizers') if m in sys.modules]; print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.strip() == ""


# --------------------------------------------------------------- example
def test_example_subclass_caps_weights_and_keeps_the_rest_in_cash(embedded_panel):
    example = load_example()
    results = example.main(["--start", "2020-01-01", "--end", "2021-12-31",
                            "--max-weight", "0.08"])
    base, capped = results["base"], results["capped"]
    assert not np.allclose(base.equity.to_numpy(), capped.equity.to_numpy())
    # Base is fully invested; the capped book parks what the cap cut in cash.
    base_cash = (base.cash / base.equity).iloc[30:]
    capped_cash = (capped.cash / capped.equity).iloc[30:]
    assert base_cash.max() < 1e-6 and capped_cash.mean() > 0.05
    # Right after each fill, no name is worth more than 8% of the book (fills at adj close).
    adj = embedded_panel.field("adj_close")
    trades = capped.trades
    shares = trades.pivot_table(index="date", columns="ticker", values="size", aggfunc="sum")
    held = shares.fillna(0.0).cumsum()
    prices = adj.loc[held.index, held.columns]
    book = held * prices
    weights = book.div(book.sum(axis=1) + capped.cash.loc[held.index], axis=0)
    assert weights.to_numpy().max() <= 0.08 + 1e-9


def test_signal_dates_must_be_sorted_and_unique():
    from strategies.base import signal_dates

    ok = signal_dates(pd.DatetimeIndex(["2020-01-02", "2020-01-03"], tz="UTC"), "weights")
    assert ok.tz is None and len(ok) == 2
    for bad in (["2020-01-03", "2020-01-02"], ["2020-01-02", "2020-01-02"]):
        with pytest.raises(StormBtError, match="param 'weights': the dates must be sorted and unique"):
            signal_dates(pd.DatetimeIndex(bad), "weights")
    with pytest.raises(StormBtError, match="param 'signals': the index must hold dates"):
        signal_dates(pd.Index(["soon", "later"]), "signals")


# -------------------------------------------------------------- leverage
class _OneAndAHalf(PortfolioStrategy):
    """Asks for 1.5x leverage: 1.5 times every weights row."""

    def target_weights(self, date, signal_row):
        return 1.5 * signal_row


def test_weights_above_one_are_scaled_to_a_fully_invested_book_with_a_warning(dj10, caplog):
    start, end = "2019-01-01", "2019-06-28"
    days = trading_days(dj10, start, end)
    rng = np.random.default_rng(3)
    weights = pd.DataFrame(rng.dirichlet(np.ones(10), size=len(days[::5])), index=days[::5],
                           columns=list(dj10.tickers))  # every row sums to 1
    plain = run_portfolio_backtest(dj10, weights, start, end, cash=CASH)
    with caplog.at_level("WARNING", logger="strategies.portfolio"):
        levered = run_portfolio_backtest(dj10, weights, start, end, cash=CASH,
                                         strategy_cls=_OneAndAHalf)
    # no borrowing: the 1.5x book is the 1x book (the same shares), to float rounding
    np.testing.assert_allclose(levered.equity.to_numpy(), plain.equity.to_numpy(), rtol=1e-9)
    warned = [r.getMessage() for r in caplog.records if "sum" in r.getMessage()]
    first = weights.index[0].date()
    assert len(warned) == 2, warned  # the first row, then the count at the end of the run
    assert warned[0].startswith(f"{first}: target weights sum to 1.5 > 1")
    assert f"{len(weights)} rows of target weights summed above 1" in warned[1]
    # a fully invested 1x book is not warned about
    caplog.clear()
    with caplog.at_level("WARNING", logger="strategies.portfolio"):
        run_portfolio_backtest(dj10, weights, start, end, cash=CASH)
    assert not [r for r in caplog.records if "sum" in r.getMessage()]
