"""Valid data in any row order, date format or DataFrame layout loads to the same panel."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from storm_bt.data import load_panel
from storm_bt.data.dates import parse_iso_date
from storm_bt.errors import StormBtError

YAHOO = {"date": "Date", "open": "Open", "high": "High", "low": "Low", "close": "Close",
         "adj_close": "Adj Close", "volume": "Volume"}
THREE = ["AAPL", "IBM", "V"]  # V starts in 2008: NaN before its listing in a wide frame


@pytest.fixture(scope="module")
def dj30_rows(shared_data_dir) -> pd.DataFrame:
    """Raw rows of three Dow stocks from the shared file, 2007-2009 (V lists in March 2008)."""
    raw = pd.read_csv(shared_data_dir / "dj30_daily.csv.gz")
    keep = raw.ticker.isin(THREE) & raw.date.between("2007-06-01", "2009-06-30")
    return raw[keep].reset_index(drop=True)


@pytest.fixture(scope="module")
def expected(dj30_panel):
    """The same stocks and dates cut from the panel of the whole (sorted) shared file."""
    return dj30_panel.select(THREE).since("2007-06-01").until("2009-06-30")


def _same_panel(panel, expected, fields=None):
    fields = fields or expected.fields
    assert panel.tickers == expected.tickers
    pd.testing.assert_index_equal(panel.dates, expected.dates)
    np.testing.assert_array_equal(panel.mask, expected.mask)
    for f in fields:
        np.testing.assert_array_equal(panel.array(f), expected.array(f))


# ------------------------------------------------------------------ row order
def test_shuffled_long_csv_gives_the_sorted_files_panel(tmp_path, dj30_rows, expected):
    shuffled = dj30_rows.sample(frac=1.0, random_state=0)
    shuffled.to_csv(tmp_path / "shuffled.csv", index=False)
    dj30_rows.to_csv(tmp_path / "sorted.csv", index=False)
    panel = load_panel(tmp_path / "shuffled.csv")
    assert panel.fingerprint() == load_panel(tmp_path / "sorted.csv").fingerprint()
    _same_panel(panel, expected)


def test_shuffled_parquet_and_dataframe_give_the_sorted_panel(tmp_path, dj30_rows, expected):
    shuffled = dj30_rows.sample(frac=1.0, random_state=1).assign(date=lambda f: pd.to_datetime(f.date))
    shuffled.to_parquet(tmp_path / "shuffled.parquet")
    _same_panel(load_panel(tmp_path / "shuffled.parquet"), expected)
    _same_panel(load_panel(shuffled), expected)


@pytest.mark.parametrize("levels", [["date", "ticker"], ["ticker", "date"], ["Date"]])
def test_a_frame_or_parquet_file_indexed_by_date_and_ticker_gives_the_same_panel(
        tmp_path, dj30_rows, expected, levels):
    """pandas keeps a panel indexed by (date, ticker); a Parquet file written from such a
    frame keeps them in its index. Both read as the long table (they used to end in a
    NotImplementedError traceback, and in 'missing column date')."""
    frame = dj30_rows.assign(date=lambda f: pd.to_datetime(f.date)).rename(
        columns={"date": "Date"} if levels == ["Date"] else {}).set_index(levels)
    _same_panel(load_panel(frame), expected)
    frame.to_parquet(tmp_path / "indexed.parquet")
    _same_panel(load_panel(tmp_path / "indexed.parquet"), expected)


def test_a_frame_whose_row_index_levels_have_no_names_is_refused_with_the_fix(dj30_rows):
    frame = dj30_rows.set_index(["date", "ticker"]).rename_axis([None, None])
    with pytest.raises(StormBtError, match=r"<DataFrame>: its row index has levels None, None; "
                                           r"name them date and ticker"):
        load_panel(frame)


def test_shuffled_yahoo_folder_gives_the_sorted_panel(tmp_path, dj30_rows, expected):
    for t, rows in dj30_rows.groupby("ticker"):
        rows = rows.drop(columns="ticker").rename(columns=YAHOO).sample(frac=1.0, random_state=2)
        rows.to_csv(tmp_path / f"{t}.csv", index=False)
    _same_panel(load_panel(tmp_path), expected)


def test_duplicate_in_a_shuffled_file_names_file_line_and_ticker(tmp_path, dj30_rows):
    shuffled = dj30_rows.sample(frac=1.0, random_state=3).reset_index(drop=True)
    bad = pd.concat([shuffled, shuffled.iloc[[5]]], ignore_index=True)
    bad.to_csv(tmp_path / "dup.csv", index=False)
    row = shuffled.iloc[5]
    with pytest.raises(StormBtError, match=rf"dup.csv: line {len(bad) + 1}: duplicate row for "
                                           rf"{row.ticker} on {row.date} \(first at line 7\)"):
        load_panel(tmp_path / "dup.csv")


# ---------------------------------------------------------------------- dates
def _with_dates(rows: pd.DataFrame, fmt: str) -> pd.DataFrame:
    return rows.assign(date=pd.to_datetime(rows.date).dt.strftime(fmt))


@pytest.mark.parametrize("fmt", ["%d/%m/%Y", "%m/%d/%Y", "%d.%m.%Y", "%Y/%m/%d", "%Y%m%d",
                                 "%Y-%m-%d 00:00:00-05:00"])
def test_a_files_date_format_is_detected(tmp_path, dj30_rows, expected, fmt):
    _with_dates(dj30_rows, fmt).to_csv(tmp_path / "dates.csv", index=False)
    _same_panel(load_panel(tmp_path / "dates.csv"), expected)


def test_yahoo_folder_detects_the_format_per_file(tmp_path, dj30_rows, expected):
    formats = {"AAPL": "%d/%m/%Y", "IBM": "%Y-%m-%d", "V": "%m/%d/%Y"}
    for t, rows in dj30_rows.groupby("ticker"):
        rows = _with_dates(rows, formats[t]).drop(columns="ticker").rename(columns=YAHOO)
        rows.to_csv(tmp_path / f"{t}.csv", index=False)
    _same_panel(load_panel(tmp_path), expected)


def _small(dates: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"date": dates, "ticker": "AAA", "close": np.arange(1.0, len(dates) + 1)})


@pytest.mark.parametrize("dates, pattern", [
    (["01/02/2020", "02/03/2020", "03/04/2020"],
     r"ambiguous dates: no date \(e.g. '01/02/2020'\) has a day above 12, so they may be "
     r"dd/mm/yyyy or mm/dd/yyyy; write the dates as YYYY-MM-DD"),
    (["2020-01-02", "03/01/2020"], r"mixes date formats \(line 2: '2020-01-02', line 3: '03/01/2020'\)"),
    (["13/01/2020", "01/14/2020"], r"neither all day-first nor all month-first \(line 2: '13/01/2020', "
                                   r"line 3: '01/14/2020'\)"),
    (["2020-01-02", "2020-02-30"], r"line 3: cannot read date '2020-02-30' as YYYY-MM-DD \(no such day\)"),
    (["2020-01-02", "Jan 3 2020"], r"line 3: cannot read date 'Jan 3 2020'; use YYYY-MM-DD"),
])
def test_bad_dates_are_one_line_naming_the_file(tmp_path, dates, pattern):
    _small(dates).to_csv(tmp_path / "d.csv", index=False)
    with pytest.raises(StormBtError, match=pattern) as info:
        load_panel(tmp_path / "d.csv")
    assert str(info.value).startswith(str(tmp_path / "d.csv")) and "\n" not in str(info.value)


def test_day_first_file_is_read_day_first(tmp_path):
    _small(["31/03/2021", "01/04/2021", "06/04/2021"]).to_csv(tmp_path / "d.csv", index=False)
    assert list(load_panel(tmp_path / "d.csv").dates.strftime("%Y-%m-%d")) == \
        ["2021-03-31", "2021-04-01", "2021-04-06"]


def test_flag_dates_are_iso_only():
    assert parse_iso_date("2012-06-01", "--train-start") == pd.Timestamp(2012, 6, 1)
    assert parse_iso_date(pd.Timestamp("2012-06-01 15:30"), "--train-start") == pd.Timestamp(2012, 6, 1)
    for bad in ("01/06/2012", "31/03/2021", "20120601", "2012-6-1", "2021-02-30", "June 1 2012"):
        with pytest.raises(StormBtError, match=rf"--train-start '{bad}' is not a date"):
            parse_iso_date(bad, "--train-start")


# ----------------------------------------------------------------- DataFrames
def test_wide_frame_with_nan_before_a_listing_loads(dj30_rows, expected):
    wide = dj30_rows.pivot(index="date", columns="ticker", values="adj_close")
    assert wide["V"].isna().any()  # V lists in 2008
    panel = load_panel(wide)
    _same_panel(panel, expected, fields=["adj_close"])
    np.testing.assert_array_equal(panel.array("close"), expected.array("adj_close"))


@pytest.mark.parametrize("name", ["wide.csv", "wide.parquet"])
def test_a_wide_file_loads_like_the_wide_frame(tmp_path, dj30_rows, expected, name):
    """A file of a date column and one adjusted-close column per ticker (as
    ``yf.download(...)["Adj Close"].to_csv()`` writes it) is read as wide; a long file that
    lacks its ticker column is still refused as one."""
    wide = dj30_rows.pivot(index="date", columns="ticker", values="adj_close").rename_axis("Date")
    wide.to_csv(tmp_path / name) if name.endswith(".csv") else \
        wide.reset_index().to_parquet(tmp_path / name)
    panel = load_panel(tmp_path / name)
    _same_panel(panel, expected, fields=["adj_close"])
    assert panel.fingerprint() == load_panel(wide).fingerprint()
    dj30_rows[["date", "close", "volume"]].to_csv(tmp_path / "no_ticker.csv", index=False)
    with pytest.raises(StormBtError, match=r"no_ticker.csv: missing column 'ticker'"):
        load_panel(tmp_path / "no_ticker.csv")


def test_wide_frame_gap_is_a_masked_missing_day():
    wide = pd.DataFrame({"AAA": [10.0, np.nan, 12.0], "BBB": [5.0, 6.0, 7.0]},
                        index=pd.bdate_range("2021-01-04", periods=3))
    panel = load_panel(wide)
    assert panel.mask.tolist() == [[True, True], [False, True], [True, True]]
    assert panel.array("adj_close")[1, 0] == 10.0  # forward-filled, as in a long file


@pytest.mark.parametrize("wide, pattern", [
    (pd.DataFrame({"AAA": [1.0, "x"], "BBB": [1.0, 2.0]}, index=["2021-01-04", "2021-01-05"]),
     r"<DataFrame>: column 'AAA' on 2021-01-05 is 'x', not a price"),
    (pd.DataFrame({"AAA": [1.0, -2.0], "BBB": [1.0, 2.0]}, index=["2021-01-04", "2021-01-05"]),
     r"column 'AAA' on 2021-01-05 is -2.0; prices must be positive"),
    (pd.DataFrame({"AAA": [np.nan, np.nan], "BBB": [1.0, 2.0]}, index=["2021-01-04", "2021-01-05"]),
     r"column 'AAA' has no prices; drop the column"),
    (pd.DataFrame({"AAA": [1.0, 2.0]}, index=["2021-01-04", "2021-01-04"]),
     r"the date 2021-01-04 appears twice in the index"),
    (pd.DataFrame({"AAA": [1.0, 2.0]}, index=["2021-01-04", "soon"]),
     r"index row 2 \('soon'\): cannot read date 'soon'"),
])
def test_bad_wide_frame_names_column_and_date(wide, pattern):
    with pytest.raises(StormBtError, match=pattern):
        load_panel(wide)


@pytest.mark.parametrize("ticker_level", [1, 0])
def test_yfinance_multiindex_frame_loads(dj30_rows, expected, ticker_level):
    rows = dj30_rows.assign(date=pd.to_datetime(dj30_rows.date)).set_index(["date", "ticker"])
    wide = rows.rename(columns={k: v for k, v in YAHOO.items()}).unstack("ticker")
    wide.columns = wide.columns.set_names(["Price", "Ticker"])
    wide["Dividends", "AAPL"] = 0.0  # yfinance's actions=True column: not a price field
    if ticker_level == 0:
        wide = wide.swaplevel(axis=1)
    _same_panel(load_panel(wide), expected)


def test_unknown_multiindex_is_a_clear_error():
    cols = pd.MultiIndex.from_product([["a", "b"], ["x", "y"]])
    frame = pd.DataFrame(np.ones((2, 4)), index=pd.bdate_range("2021-01-04", periods=2), columns=cols)
    with pytest.raises(StormBtError, match=r"<DataFrame>: cannot read its MultiIndex columns "
                                           r"\(level 0: a, b; level 1: x, y\)"):
        load_panel(frame)


def test_long_frame_with_a_date_index_loads(dj30_rows, expected):
    frame = dj30_rows.assign(date=pd.to_datetime(dj30_rows.date)).set_index("date")
    _same_panel(load_panel(frame), expected)


# ------------------------------------------------------------------- Yahoo null
def test_yahoo_null_rows_are_missing_days(tmp_path):
    (tmp_path / "AAA.csv").write_text(
        "Date,Open,High,Low,Close,Adj Close,Volume\n"
        "2020-01-02,1,2,0.5,1.5,1.4,100\n"
        "2020-01-03,null,null,null,null,null,null\n"
        "2020-01-06,1,2,0.5,1.6,1.5,100\n")
    (tmp_path / "BBB.csv").write_text(
        "Date,Open,High,Low,Close,Adj Close,Volume\n"
        "2020-01-02,1,2,0.5,1.5,1.5,10\n2020-01-03,1,2,0.5,1.5,1.5,10\n2020-01-06,1,2,0.5,1.5,1.5,10\n")
    panel = load_panel(tmp_path)
    a = panel.tickers.index("AAA")
    assert panel.mask[:, a].tolist() == [True, False, True]
    assert panel.array("adj_close")[1, a] == 1.4  # forward-filled
    assert panel.array("volume")[1, a] == 0.0
