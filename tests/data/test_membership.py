"""Point-in-time membership intervals on a panel's calendar."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from storm_bt.data import load_panel
from storm_bt.data.membership import load_membership, read_membership
from storm_bt.errors import StormBtError


@pytest.fixture(scope="module")
def sp500_intervals(shared_data_dir):
    return shared_data_dir / "sp500_membership_intervals.csv"


def test_mask_follows_the_shared_files_intervals(dj30_panel, sp500_intervals):
    mask = load_membership(sp500_intervals, dj30_panel)
    assert mask.index.equals(dj30_panel.dates) and list(mask.columns) == list(dj30_panel.tickers)
    raw = pd.read_csv(sp500_intervals, keep_default_na=False)
    days = dj30_panel.dates.to_numpy()
    for ticker in dj30_panel.tickers:  # an independent day-by-day reading of the file
        expected = np.zeros(len(days), dtype=bool)
        for _, row in raw[raw.ticker == ticker].iterrows():
            end = np.datetime64(row.end_date) if row.end_date else np.datetime64("2262-01-01")
            expected |= (days >= np.datetime64(row.start_date)) & (days < end)
        np.testing.assert_array_equal(mask[ticker].to_numpy(), expected, err_msg=ticker)


def test_left_and_rejoined_ticker_and_exclusive_end(dj30_panel, sp500_intervals):
    """DOW (Dow Chemical) left on 2017-09-01; Dow Inc joined on 2019-04-02."""
    dow = load_membership(sp500_intervals, dj30_panel)["DOW"]
    assert dow["2017-08-31"] and not dow["2017-09-01"]
    assert not dow["2019-04-01"] and dow["2019-04-02"] and dow.iloc[-1]


def _panel():
    wide = pd.DataFrame({"AAA": [1.0] * 5, "BBB": [2.0] * 5, "CCC": [3.0] * 5},
                        index=pd.bdate_range("2021-01-04", periods=5))
    return load_panel(wide)


def test_open_end_and_unknown_ticker(tmp_path, caplog):
    (tmp_path / "m.csv").write_text("ticker,start_date,end_date\nAAA,2021-01-05,\n"
                                    "BBB,2020-01-01,2021-01-06\nBBB,2021-01-07,2021-01-08\nZZZ,2000-01-03,\n")
    mask = load_membership(tmp_path / "m.csv", _panel())
    assert mask["AAA"].tolist() == [False, True, True, True, True]
    assert mask["BBB"].tolist() == [True, True, False, True, False]
    assert not mask["CCC"].any() and "CCC" in caplog.text


@pytest.mark.parametrize("body, pattern", [
    ("ticker,start\nAAA,2021-01-05\n", r"m.csv: missing column\(s\) start_date, end_date \(found: ticker, start\)"),
    ("ticker,start_date,end_date\nAAA,2021-01-05,\n,2021-01-05,\n", r"m.csv: line 3: empty ticker"),
    ("ticker,start_date,end_date\nAAA,2021-01-05,\nBBB,soon,\n", r"m.csv: line 3: cannot read date 'soon'"),
    ("ticker,start_date,end_date\nAAA,2021-01-05,2021-01-05\n",
     r"m.csv: line 2: AAA ends 2021-01-05, not after its start 2021-01-05"),
    ("ticker,start_date,end_date\nAAA,2021-01-05,\nAAA,2021-01-06,2021-01-07\n",
     r"m.csv: line 3: AAA's interval overlaps the one on line 2; merge them"),
    ("ticker,start_date,end_date\nAAA,01/02/2021,\n", r"m.csv: ambiguous dates"),
    ("ticker,start_date,end_date\nQQQ,2021-01-05,\n", r"m.csv: none of the data's 3 tickers"),
])
def test_bad_membership_file_names_the_place(tmp_path, body, pattern):
    (tmp_path / "m.csv").write_text(body)
    with pytest.raises(StormBtError, match=pattern):
        load_membership(tmp_path / "m.csv", _panel())


def test_read_membership_keeps_every_interval(sp500_intervals):
    intervals = read_membership(sp500_intervals)
    assert len(intervals) == 1230 and intervals["end_date"].isna().sum() == 503
