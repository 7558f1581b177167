"""Loaders, validation and the Panel type."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from storm_bt.data import load_panel
from storm_bt.data.benchmark import equal_weight_returns, load_benchmark
from storm_bt.errors import StormBtError


def _long_rows(tickers=("AAA", "BBB"), n=5, start="2020-01-01") -> pd.DataFrame:
    dates = pd.bdate_range(start, periods=n)
    rows = []
    for k, t in enumerate(tickers):
        for i, d in enumerate(dates):
            c = 10.0 + k + i
            rows.append(dict(date=d.strftime("%Y-%m-%d"), ticker=t, open=c - 0.5, high=c + 1,
                             low=c - 1, close=c, adj_close=c * 0.98, volume=1000 + i))
    return pd.DataFrame(rows)


def _write(frame: pd.DataFrame, path) -> str:
    frame.to_csv(path, index=False)
    return str(path)


def test_embedded_is_the_skfolio_sample(embedded_panel):
    assert len(embedded_panel.tickers) == 20
    assert embedded_panel.fields == ("close", "adj_close")
    assert embedded_panel.dates[0] == pd.Timestamp("1990-01-02")
    assert embedded_panel.dates[-1] == pd.Timestamp("2022-12-28")
    np.testing.assert_array_equal(embedded_panel.array("close"), embedded_panel.array("adj_close"))


def test_embedded_is_read_without_importing_skfolio_and_matches_its_loader(monkeypatch):
    """The embedded sample is read from skfolio's file directly (importing skfolio costs
    seconds before the first input check); it must be skfolio's own frame, value for value,
    and skfolio's loader must still serve where the file is not found."""
    from skfolio.datasets import load_sp500_dataset

    from storm_bt.data import loaders

    direct = loaders._read_skfolio_sp500()
    pd.testing.assert_frame_equal(direct, load_sp500_dataset())
    monkeypatch.setattr(loaders, "_read_skfolio_sp500", lambda: None)
    fallback = loaders.load_embedded()
    monkeypatch.undo()
    np.testing.assert_array_equal(fallback.array("close"), loaders.load_embedded().array("close"))


def test_long_file_matches_its_rows(dj30_panel, shared_data_dir):
    raw = pd.read_csv(shared_data_dir / "dj30_daily.csv.gz", parse_dates=["date"])
    row = raw[(raw.ticker == "AAPL") & (raw.date == "2020-08-28")].iloc[0]
    t = dj30_panel.tickers.index("AAPL")
    d = dj30_panel.dates.get_loc(pd.Timestamp("2020-08-28"))
    for k, f in enumerate(dj30_panel.fields):
        assert dj30_panel.values[d, t, k] == pytest.approx(row[f])
    assert dj30_panel.mask.sum() == len(raw)
    # V starts in 2008: invalid and NaN before its first row
    v = dj30_panel.tickers.index("V")
    assert not dj30_panel.mask[0, v] and np.isnan(dj30_panel.values[0, v, 0])


def test_parquet_and_csv_give_the_same_panel(tmp_path):
    frame = _long_rows()
    csv = load_panel(_write(frame, tmp_path / "p.csv"))
    frame.assign(date=pd.to_datetime(frame.date)).to_parquet(tmp_path / "p.parquet")
    pq = load_panel(tmp_path / "p.parquet")
    assert csv.fingerprint() == pq.fingerprint()


def test_yahoo_folder(tmp_path):
    frame = _long_rows()
    for t, rows in frame.groupby("ticker"):
        rows = rows.drop(columns="ticker").rename(columns={
            "date": "Date", "open": "Open", "high": "High", "low": "Low", "close": "Close",
            "adj_close": "Adj Close", "volume": "Volume"})
        rows.to_csv(tmp_path / f"{t}.csv", index=False)
    panel = load_panel(tmp_path)
    assert panel.tickers == ("AAA", "BBB")
    assert panel.fingerprint() == load_panel(_write(frame, tmp_path / "long.csv.gz")).fingerprint()


def test_wide_dataframe_is_close_only():
    frame = _long_rows().pivot(index="date", columns="ticker", values="adj_close")
    frame.index = pd.to_datetime(frame.index)
    panel = load_panel(frame)
    assert panel.fields == ("close", "adj_close")


def test_missing_day_is_filled_and_masked(tmp_path):
    frame = _long_rows(n=6)
    frame = frame.drop(index=frame[(frame.ticker == "AAA")].index[3])
    panel = load_panel(_write(frame, tmp_path / "gap.csv"))
    a = panel.tickers.index("AAA")
    assert not panel.mask[3, a]
    np.testing.assert_array_equal(panel.values[3, a, :5], panel.values[2, a, :5])
    assert panel.values[3, a, panel.fields.index("volume")] == 0


def test_select_unknown_ticker_names_it(embedded_panel):
    with pytest.raises(StormBtError, match="unknown ticker.*ZZZZ"):
        embedded_panel.select(["AAPL", "ZZZZ"])


def test_until_is_a_prefix(embedded_panel):
    cut = embedded_panel.until("2000-06-30")
    assert cut.dates[-1] <= pd.Timestamp("2000-06-30")
    np.testing.assert_array_equal(cut.values, embedded_panel.values[: len(cut.dates)])


@pytest.mark.parametrize("mutate, pattern", [
    (lambda f: f.drop(columns="ticker"), r"missing column 'ticker'"),
    (lambda f: f.drop(columns=["close", "adj_close"]), r"missing column 'close'"),
    (lambda f: f.assign(close=f.close.where(f.index != 3)), r"line 5: column 'close' is empty"),
    (lambda f: f.assign(open=f.open.where(f.index != 2, -1.0)), r"line 4: column 'open' = -1.0"),
    (lambda f: f.assign(adj_close=f.adj_close.where(f.index != 1, 0.0)), r"line 3: column 'adj_close' = 0.0"),
    (lambda f: pd.concat([f, f.iloc[[2]]]), r"line 12: duplicate row for AAA on 2020-01-03 \(first at line 4\)"),
    (lambda f: pd.concat([f.iloc[::-1], f.iloc[[7]]]), r"line 12: duplicate row for BBB on 2020-01-03 \(first at line 4\)"),
    (lambda f: f.assign(date=f.date.where(f.index != 4, "not-a-date")), r"line 6: cannot read date 'not-a-date'"),
    (lambda f: f.drop(columns="low"), r"has open, high but not low"),
    (lambda f: f.assign(volume=f.volume.where(f.index != 0, -5)), r"line 2: negative volume"),
    # an empty ticker cell reads as NaN (pandas 3 keeps it through astype(str)): it was
    # dropped without a word
    (lambda f: f.assign(ticker=f.ticker.where(f.index != 6)), r"line 8: empty ticker"),
])
def test_bad_long_file_names_the_place(tmp_path, mutate, pattern):
    path = _write(mutate(_long_rows()), tmp_path / "bad.csv")
    with pytest.raises(StormBtError, match=pattern) as info:
        load_panel(path)
    assert "bad.csv" in str(info.value)


def test_missing_path_and_unknown_suffix(tmp_path):
    with pytest.raises(StormBtError, match="no such file"):
        load_panel(tmp_path / "nope.csv")
    (tmp_path / "x.xlsx").write_text("x")
    with pytest.raises(StormBtError, match="unknown file type"):
        load_panel(tmp_path / "x.xlsx")


def test_yahoo_row_with_some_fields_null_is_named(tmp_path):
    (tmp_path / "AAA.csv").write_text(
        "Date,Open,High,Low,Close,Adj Close,Volume\n"
        "2020-01-02,1,2,0.5,1.5,1.5,100\n2020-01-03,null,2,0.5,1.5,1.5,100\n")
    with pytest.raises(StormBtError, match=r"AAA.csv: line 3: column 'open' is empty"):
        load_panel(tmp_path)


def test_equal_weight_benchmark_is_mean_return(embedded_panel):
    p = embedded_panel.until("1995-12-31")
    bench = equal_weight_returns(p)
    np.testing.assert_allclose(bench.iloc[1:].to_numpy(), p.returns().iloc[1:].mean(axis=1).to_numpy())


def test_benchmark_file(shared_data_dir, dj30_panel):
    spy = load_benchmark(f"{shared_data_dir / 'benchmarks_daily.csv.gz'}:SPY", dj30_panel)
    assert spy.loc["2021-01-04":"2024-03-08"].notna().all()
    with pytest.raises(StormBtError, match="no rows for ticker 'QQQ'"):
        load_benchmark(f"{shared_data_dir / 'benchmarks_daily.csv.gz'}:QQQ", dj30_panel)


def test_benchmark_file_in_day_first_dates_and_shuffled(tmp_path, shared_data_dir, dj30_panel):
    raw = pd.read_csv(shared_data_dir / "benchmarks_daily.csv.gz")
    spy = raw[raw.ticker == "SPY"].sample(frac=1.0, random_state=0)
    spy.assign(date=pd.to_datetime(spy.date).dt.strftime("%d/%m/%Y")).to_csv(tmp_path / "b.csv", index=False)
    expected = load_benchmark(f"{shared_data_dir / 'benchmarks_daily.csv.gz'}:SPY", dj30_panel)
    pd.testing.assert_series_equal(load_benchmark(str(tmp_path / "b.csv"), dj30_panel), expected)
    pd.concat([spy, spy.iloc[[3]]]).to_csv(tmp_path / "dup.csv", index=False)
    with pytest.raises(StormBtError, match=rf"dup.csv: two rows for SPY on {spy.date.iloc[3]}"):
        load_benchmark(str(tmp_path / "dup.csv"), dj30_panel)


@pytest.mark.parametrize("value, shown", [("abc", "'abc'"), ("-1.5", "-1.5"), ("0", "0"),
                                          ("", "empty")])
def test_a_bad_benchmark_price_names_its_line_and_value(tmp_path, embedded_panel, value, shown):
    """A benchmark file's price that is not a positive number is refused with its line,
    value, ticker and date (a non-numeric one used to end in a ValueError traceback)."""
    days = embedded_panel.dates[100:104].strftime("%Y-%m-%d")
    lines = ["date,ticker,close"] + [f"{d},IDX,{100 + k}" for k, d in enumerate(days)]
    path = tmp_path / "bench.csv"
    path.write_text("\n".join(lines) + "\n")
    assert load_benchmark(f"{path}:IDX", embedded_panel).notna().sum() == 3
    lines[3] = f"{days[2]},IDX,{value}"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(StormBtError, match=rf"bench.csv: line 4: close {shown} for IDX on "
                                           rf"{days[2]} is not a positive price"):
        load_benchmark(f"{path}:IDX", embedded_panel)
    path.write_text("date,ticker,price\n" + f"{days[0]},IDX,1\n")
    with pytest.raises(StormBtError, match="missing column 'adj_close' \\(or 'close'\\)"):
        load_benchmark(f"{path}:IDX", embedded_panel)


def test_a_bad_price_in_a_parquet_benchmark_names_its_row_counted_from_1(tmp_path, embedded_panel):
    """Parquet rows are counted from 1, as the price loader counts them, whatever index the
    file stored (a stored index used to be taken for row numbers and to misalign dates)."""
    days = embedded_panel.dates[100:104]
    frame = pd.DataFrame({"date": days, "ticker": "IDX", "close": [100.0, 101.0, 102.0, 103.0]},
                         index=pd.Index([40, 41, 42, 43], name="stored"))
    frame.to_parquet(tmp_path / "bench.parquet")
    assert load_benchmark(str(tmp_path / "bench.parquet"), embedded_panel).notna().sum() == 3
    frame.loc[42, "close"] = -2.0
    frame.to_parquet(tmp_path / "bench.parquet")
    with pytest.raises(StormBtError, match=rf"bench.parquet: row 3: close -2.0 for IDX on "
                                           rf"{days[2].date()} is not a positive price"):
        load_benchmark(str(tmp_path / "bench.parquet"), embedded_panel)


def test_a_benchmark_with_one_empty_adj_close_is_refused_not_switched_to_close(tmp_path,
                                                                                embedded_panel):
    """An adj_close empty on one day used to switch the whole series to the unadjusted
    close without a word; an adj_close empty throughout (an index) still falls back to
    close."""
    days = embedded_panel.dates[100:104].strftime("%Y-%m-%d")
    rows = [f"{d},IDX,{100 + k},{50 + k}" for k, d in enumerate(days)]
    path = tmp_path / "bench.csv"
    path.write_text("\n".join(["date,ticker,close,adj_close"] + rows) + "\n")
    on_adj = load_benchmark(f"{path}:IDX", embedded_panel).dropna()
    np.testing.assert_allclose(on_adj.to_numpy(), [51 / 50 - 1, 52 / 51 - 1, 53 / 52 - 1])
    rows[1] = f"{days[1]},IDX,101,"
    path.write_text("\n".join(["date,ticker,close,adj_close"] + rows) + "\n")
    with pytest.raises(StormBtError, match=rf"bench.csv: line 3: adj_close empty for IDX on "
                                           rf"{days[1]} is not a positive price"):
        load_benchmark(f"{path}:IDX", embedded_panel)
    rows = [f"{d},IDX,{100 + k}," for k, d in enumerate(days)]
    path.write_text("\n".join(["date,ticker,close,adj_close"] + rows) + "\n")
    on_close = load_benchmark(f"{path}:IDX", embedded_panel).dropna()
    np.testing.assert_allclose(on_close.to_numpy(), [101 / 100 - 1, 102 / 101 - 1, 103 / 102 - 1])
