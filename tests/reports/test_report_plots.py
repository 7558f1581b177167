"""reports.plots: the charts that replace quantstats' broken ones show the right numbers."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from reports.plots import (
    period_returns,
    return_quantiles_figure,
    rolling_beta,
    rolling_beta_figure,
)


@pytest.fixture(scope="module")
def two_years(embedded_panel):
    panel = embedded_panel.since("2021-01-01")
    returns = panel.returns().iloc[1:]
    return returns.iloc[:, :5].mean(axis=1).rename("first5"), returns.mean(axis=1)


def test_period_returns_compound_each_calendar_period_once(two_years):
    r, _ = two_years
    yearly = period_returns(r, "Y")
    by_hand = [np.prod(1.0 + r[str(y)].to_numpy()) - 1.0 for y in (2021, 2022)]
    assert list(yearly.index.year) == [2021, 2022]
    assert yearly.to_numpy() == pytest.approx(by_hand, rel=1e-12)
    # 2022-12-31 is a Saturday: the year must still count (quantstats lost it).
    monthly = period_returns(r, "M")
    assert len(monthly) == 24 and monthly.index[-1] == pd.Period("2022-12", "M")
    weekly = period_returns(r, "W-FRI")
    last_week = r[r.index > pd.Timestamp("2022-12-23")]
    assert weekly.iloc[-1] == pytest.approx(np.prod(1.0 + last_week.to_numpy()) - 1.0)


def test_return_quantiles_medians_are_those_of_the_period_returns(two_years):
    r, _ = two_years
    fig = return_quantiles_figure(r)
    medians = [line.get_ydata()[0] for line in fig.axes[0].lines
               if len(line.get_xdata()) == 2 and line.get_color() == "0.2"]
    want = [np.median(period_returns(r, f)) for f in ("D", "W-FRI", "M", "Q", "Y")]
    assert medians == pytest.approx(want, rel=1e-12)


def test_rolling_beta_is_undefined_until_the_window_is_full(two_years):
    r, b = two_years
    beta = rolling_beta(r, b, 126)
    assert beta.iloc[:125].isna().all()
    x, y = b.iloc[200 - 125:201].to_numpy(), r.iloc[200 - 125:201].to_numpy()
    assert beta.iloc[200] == pytest.approx(np.cov(y, x)[0, 1] / np.var(x, ddof=1), rel=1e-9)
    fig = rolling_beta_figure(r, b)
    drawn = fig.axes[0].lines[0].get_ydata()
    assert np.isnan(drawn[:125]).all()  # not drawn as 0 during the warm-up
