"""storm_bt.evaluation.ic against scipy / numpy and hand-computed examples."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from storm_bt.evaluation import ic as E

DATES = pd.bdate_range("2022-01-03", periods=25)
TICKERS = [f"T{i:02d}" for i in range(12)]


def _frames(ties: bool, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    pred = rng.normal(size=(len(DATES), len(TICKERS)))
    real = 0.3 * pred + rng.normal(size=pred.shape)
    if ties:  # coarse values give many ties
        pred, real = np.round(pred), np.round(real * 2) / 2
    pred[rng.random(pred.shape) < 0.15] = np.nan
    real[rng.random(real.shape) < 0.15] = np.nan
    pred[3, :10] = np.nan  # date 3 keeps at most 2 tickers: skipped
    return (pd.DataFrame(pred, index=DATES, columns=TICKERS),
            pd.DataFrame(real, index=DATES, columns=TICKERS))


def _valid_pairs(pred, real, date):
    x, y = pred.loc[date].to_numpy(), real.loc[date].to_numpy()
    ok = ~(np.isnan(x) | np.isnan(y))
    return x[ok], y[ok]


def test_rank_ic_equals_scipy_spearman_per_day_with_ties_and_gaps():
    pred, real = _frames(ties=True)
    ric = E.daily_rank_ic(pred, real)
    assert DATES[3] not in ric.index
    assert len(ric) == len(DATES) - 1
    for date, value in ric.items():
        x, y = _valid_pairs(pred, real, date)
        assert value == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)


def test_ic_equals_numpy_corrcoef_per_day():
    pred, real = _frames(ties=False, seed=1)
    ic = E.daily_ic(pred, real)
    assert len(ic) == len(DATES) - 1
    for date, value in ic.items():
        x, y = _valid_pairs(pred, real, date)
        assert value == pytest.approx(np.corrcoef(x, y)[0, 1], abs=1e-12)


def test_coded_rank_ic_is_n_minus_one_over_n_spearman_without_ties():
    pred, real = _frames(ties=False, seed=2)
    coded = E.coded_rank_ic(pred, real)
    for date, value in coded.items():
        x, y = _valid_pairs(pred, real, date)
        n = len(x)
        assert value == pytest.approx((n - 1) / n * stats.spearmanr(x, y).statistic, abs=1e-12)


def test_coded_rank_ic_breaks_ties_by_position():
    # Ties: pred (1, 1, 2) ranks (0, 1, 2) by position; realised (3, 1, 2) ranks (2, 0, 1).
    pred = pd.DataFrame([[1.0, 1.0, 2.0]], columns=list("abc"))
    real = pd.DataFrame([[3.0, 1.0, 2.0]], columns=list("abc"))
    # cov_pop of (0,1,2),(2,0,1) = (-1*1 + 0*-1 + 1*0)/3 = -1/3; std_1 of ranks = 1.
    assert E.coded_rank_ic(pred, real).iloc[0] == pytest.approx(-1 / 3)
    # True Spearman gives the tie the average rank 0.5: ranks (0.5, 0.5, 2) vs (2, 0, 1).
    assert E.daily_rank_ic(pred, real).iloc[0] == pytest.approx(
        stats.spearmanr([1, 1, 2], [3, 1, 2]).statistic)


def test_ic_summary_icir_by_hand():
    # Three days with IC 1, -1 and 0.5 (pearson of (1,2,3) and (1,3,2)).
    pred = pd.DataFrame([[1.0, 2.0, 3.0]] * 3, index=DATES[:3], columns=list("abc"))
    real = pd.DataFrame([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0], [1.0, 3.0, 2.0]],
                        index=DATES[:3], columns=list("abc"))
    out = E.ic_summary(pred, real)
    assert out["IC"] == pytest.approx(1 / 6)
    # daily IC deviations from 1/6: 5/6, -7/6, 1/3 -> var (ddof 1) = 78/36/2 = 39/36
    assert out["ICIR"] == pytest.approx(1 / math.sqrt(39))
    assert out["RankIC"] == pytest.approx(1 / 6)  # ranks equal the values here
    assert out["RankICIR"] == pytest.approx(1 / math.sqrt(39))
    assert out["n_days"] == 3
    assert "CodedRankIC" not in out


def test_ic_summary_parity_adds_the_coded_values():
    pred, real = _frames(ties=False, seed=3)
    out = E.ic_summary(pred, real, parity=True)
    coded = E.coded_rank_ic(pred, real)
    assert out["CodedRankIC"] == pytest.approx(coded.mean())
    assert out["CodedRankICIR"] == pytest.approx(coded.mean() / (coded.std(ddof=1) + 1e-6))
    assert abs(out["CodedRankIC"]) < abs(out["RankIC"])


def test_dates_with_few_tickers_or_constant_scores_are_skipped():
    pred = pd.DataFrame([[1.0, 2.0, np.nan, 4.0], [5.0, 5.0, 5.0, 5.0], [1.0, 2.0, 3.0, 4.0]],
                        index=DATES[:3], columns=list("abcd"))
    real = pd.DataFrame([[1.0, np.nan, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0], [4.0, 3.0, 2.0, 1.0]],
                        index=DATES[:3], columns=list("abcd"))
    assert E.daily_ic(pred, real).index.tolist() == [DATES[2]]
    assert E.daily_rank_ic(pred, real).tolist() == pytest.approx([-1.0])
    out = E.ic_summary(pred, real)
    assert out["n_days"] == 2 and out["IC"] == pytest.approx(-1.0)
    assert math.isnan(out["ICIR"])  # one day: no spread


def test_quantile_returns_on_a_constructed_example():
    cols = [f"s{i}" for i in range(10)]
    # Day 1: scores descend across columns, so column s9 has the lowest score.
    # Day 2: six tickers with both values; ranks 1..6 go to buckets 1,1,2,3,4,5.
    # Day 3: four valid tickers, fewer than 5 quantiles: skipped.
    pred = pd.DataFrame(np.nan, index=DATES[:3], columns=cols)
    real = pd.DataFrame(np.nan, index=DATES[:3], columns=cols)
    pred.iloc[0] = np.arange(10)[::-1]
    real.iloc[0] = 0.01 * np.arange(10)[::-1]
    pred.iloc[1, :6] = [0.6, 0.1, 0.5, 0.2, 0.4, 0.3]
    real.iloc[1, :6] = [6.0, 1.0, 5.0, 2.0, 4.0, 3.0]
    pred.iloc[2, :4] = [1, 2, 3, 4]
    real.iloc[2, :4] = [1, 2, 3, 4]
    out = E.quantile_returns(pred, real, n_quantiles=5)
    assert out.by_quantile.index.tolist() == list(DATES[:2])
    assert out.by_quantile.iloc[0].tolist() == pytest.approx([0.005, 0.025, 0.045, 0.065, 0.085])
    assert out.by_quantile.iloc[1].tolist() == pytest.approx([1.5, 3.0, 4.0, 5.0, 6.0])
    assert out.spread.tolist() == pytest.approx([0.08, 4.5])
    assert out.mean.tolist() == pytest.approx([0.7525, 1.5125, 2.0225, 2.5325, 3.0425])


def test_mismatched_frames_are_rejected():
    pred, real = _frames(ties=False)
    with pytest.raises(ValueError, match="tickers"):
        E.daily_ic(pred, real.rename(columns={"T00": "X"}))
    with pytest.raises(ValueError, match="shape"):
        E.ic_summary(pred, real.iloc[:-1])
