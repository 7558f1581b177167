"""reports.factor_sheet: every picture is written and linked, and the numbers behind them
equal independent computations (scipy correlations, per-date sorting by hand)."""
from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from reports.factor_sheet import (
    CODEBOOK_PICTURE,
    INDEX_NAME,
    PICTURES,
    factor_sheet_data,
    perplexity,
    write_factor_index,
    write_factor_sheet,
)
from storm_bt.errors import StormBtError

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def signal(embedded_panel):
    """A real signal on a year of the embedded sample: the trailing 5-day return as the
    score, the next day's return as the realised value."""
    returns = embedded_panel.since("2021-12-01").returns()
    score = returns.rolling(5).sum().loc["2022-01-01":].iloc[:-1]
    realised = returns.shift(-1).reindex(score.index)
    return score, realised


@pytest.fixture(scope="module")
def written(signal, tmp_path_factory):
    score, realised = signal
    out = tmp_path_factory.mktemp("factors")
    plain = write_factor_sheet(out, "momentum 5d", score, realised)
    storm = write_factor_sheet(out, "storm", -score, realised,
                               code_usage={"time": [5, 0, 3, 2], "cross": np.ones(8)})
    index = write_factor_index(out, [plain, storm])
    return out, plain, storm, index


def _links(page: Path) -> list[Path]:
    text = page.read_text(encoding="utf-8")
    return [page.parent / src for src in re.findall(r'<img src="([^"]+)"', text)]


def test_every_picture_is_a_png_linked_from_both_pages(written):
    out, plain, storm, index = written
    assert index == out / INDEX_NAME
    for sheet, expected in ((plain, set(PICTURES)), (storm, set(PICTURES) | {CODEBOOK_PICTURE})):
        files = {p.name for p in sheet.picture_dir.iterdir()}
        assert files == expected
        for png in sheet.picture_dir.iterdir():
            assert png.read_bytes()[:8] == PNG
        assert sorted(_links(sheet.page)) == sorted(sheet.picture_dir / n for n in expected)
    index_links = [p.resolve() for p in _links(index)]
    for sheet in (plain, storm):
        for name in sheet.pictures:
            assert (sheet.picture_dir / name).resolve() in index_links
        assert f'href="{sheet.page.relative_to(out).as_posix()}"' in index.read_text()
    assert not [p for p in out.rglob(".*")]  # no temporary files left


def _by_hand_quantiles(score: pd.DataFrame, realised: pd.DataFrame, n: int) -> pd.DataFrame:
    rows = {}
    for date in score.index:
        s, y = score.loc[date], realised.loc[date]
        ok = s.notna() & y.notna()
        if ok.sum() < max(3, n):
            continue
        order = s[ok].sort_values(kind="stable").index  # lowest score first
        groups = np.array_split(np.arange(len(order)), n) if len(order) % n == 0 else None
        if groups is None:
            pytest.skip("the sample is expected to hold a multiple of n tickers")
        rows[date] = [y[order[g]].mean() for g in groups]
    return pd.DataFrame.from_dict(rows, orient="index", columns=range(1, n + 1))


def test_quantile_returns_equal_sorting_by_hand(signal):
    score, realised = signal
    data = factor_sheet_data(score, realised, n_quantiles=5)
    want = _by_hand_quantiles(score, realised, 5)
    got = data.quantiles.by_quantile
    assert list(got.index) == list(want.index)
    np.testing.assert_allclose(got.to_numpy(), want.to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(data.quantile_mean.to_numpy(), want.mean().to_numpy(), rtol=1e-12)
    wealth = np.prod(1.0 + want.to_numpy(), axis=0) - 1.0
    np.testing.assert_allclose(data.quantile_cumulative.iloc[-1].to_numpy(), wealth, rtol=1e-10)


def test_ic_rank_ic_and_autocorrelation_equal_scipy(signal):
    score, realised = signal
    data = factor_sheet_data(score, realised)
    for date in score.index[[0, 50, -1]]:
        s, y = score.loc[date], realised.loc[date]
        ok = s.notna() & y.notna()
        assert data.ic[date] == pytest.approx(stats.pearsonr(s[ok], y[ok])[0], rel=1e-9)
        assert data.rank_ic[date] == pytest.approx(stats.spearmanr(s[ok], y[ok])[0], rel=1e-9)
    t, prev = score.index[30], score.index[29]
    both = score.loc[t].notna() & score.loc[prev].notna()
    want = stats.spearmanr(score.loc[prev][both], score.loc[t][both])[0]
    assert data.autocorrelation[t] == pytest.approx(want, rel=1e-9)
    assert score.index[0] not in data.autocorrelation.index  # no day before the first


def test_page_shows_the_summary_numbers(written, signal):
    _, plain, _, _ = written
    score, realised = signal
    ics = [stats.pearsonr(score.loc[d][ok], realised.loc[d][ok])[0]
           for d in score.index
           for ok in [score.loc[d].notna() & realised.loc[d].notna()] if ok.sum() >= 3]
    text = plain.page.read_text()
    cells = re.findall(r"<td>([^<]*)</td>", text)
    assert cells[0] == "momentum 5d"
    assert float(cells[1]) == pytest.approx(np.mean(ics), abs=5e-5)
    assert int(cells[7]) == len(ics)


def test_perplexity_counts_the_codes_effectively_used():
    # p = (1/4, 1/4, 0, 1/2): H = 1.5 ln 2, exp(H) = 2 sqrt(2)
    assert perplexity(pd.Series([1, 1, 0, 2])) == pytest.approx(2 * math.sqrt(2))
    assert perplexity(pd.Series([7, 7, 7])) == pytest.approx(3.0)
    assert math.isnan(perplexity(pd.Series([0, 0])))


def test_frames_without_common_data_are_a_storm_bt_error(signal, tmp_path):
    score, realised = signal
    shifted = realised.set_axis(realised.index + pd.Timedelta(days=1000))
    with pytest.raises(StormBtError, match="no date has 3 or more tickers"):
        write_factor_sheet(tmp_path, "x", score, shifted)
    with pytest.raises(StormBtError, match="code usage 'time'"):
        write_factor_sheet(tmp_path, "x", score, realised, code_usage={"time": [1, -1]})
