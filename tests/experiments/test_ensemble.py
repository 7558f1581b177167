"""Seed ensembles: what each day's average of z-scored seeds is, and how it is scored.

The ensemble is a row-wise function of the members' predictions, so a day's score uses
that day's predictions only; averaging seeds whose errors are independent must raise the
RankIC (the reason to build one), and the table pairs each model's ensemble with STORM's.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from storm_bt.evaluation import daily_rank_ic, ic_summary
from storm_bt.evaluation.significance import paired_difference
from storm_bt.experiments.ensemble import ensemble_table, seed_ensemble, zscore_by_day

DATES = pd.bdate_range("2021-01-04", periods=120)
TICKERS = [f"S{i:02d}" for i in range(40)]


def _frame(values: np.ndarray, dates=DATES) -> pd.DataFrame:
    return pd.DataFrame(values, index=dates, columns=TICKERS)


def test_each_day_is_standardised_across_its_stocks():
    rng = np.random.default_rng(0)
    values = rng.normal(3.0, 2.0, (len(DATES), len(TICKERS)))
    values[5, :3] = np.nan
    values[7] = 1.0                                      # no spread: no ranking that day
    z = zscore_by_day(_frame(values)).to_numpy()
    ok = np.ones(len(DATES), bool)
    ok[7] = False
    np.testing.assert_allclose(np.nanmean(z[ok], axis=1), 0.0, atol=1e-12)
    np.testing.assert_allclose(np.nanstd(z[ok], axis=1), 1.0, rtol=1e-12)
    assert np.isnan(z[5, :3]).all() and np.isfinite(z[5, 3:]).all()
    assert np.isnan(z[7]).all()


def test_a_seed_on_another_scale_counts_as_much_as_any_other():
    rng = np.random.default_rng(1)
    p = _frame(rng.normal(size=(len(DATES), len(TICKERS))))
    # The same ranking on a scale 1000 times larger, shifted each day: the ensemble is p's.
    shifted = p * 1000.0 + np.arange(len(DATES))[:, None]
    np.testing.assert_allclose(seed_ensemble([p, shifted]).to_numpy(),
                               zscore_by_day(p).to_numpy(), atol=1e-10)


def test_a_stock_one_seed_misses_takes_the_others_mean():
    rng = np.random.default_rng(2)
    a, b = (_frame(rng.normal(size=(len(DATES), len(TICKERS)))) for _ in range(2))
    b.iloc[10, 4] = np.nan
    ens = seed_ensemble([a, b])
    za, zb = zscore_by_day(a), zscore_by_day(b)
    assert ens.iloc[10, 4] == pytest.approx(za.iloc[10, 4])
    assert ens.iloc[11, 4] == pytest.approx((za.iloc[11, 4] + zb.iloc[11, 4]) / 2)
    with pytest.raises(ValueError, match="share"):
        seed_ensemble([a, b.iloc[:-1]])


def test_the_ensemble_up_to_a_day_ignores_everything_after_it():
    rng = np.random.default_rng(3)
    members = [_frame(rng.normal(size=(len(DATES), len(TICKERS)))) for _ in range(3)]
    cut = DATES[60]
    before = seed_ensemble(members).loc[:cut]
    perturbed = [m.copy() for m in members]
    for m in perturbed:
        m.loc[m.index > cut] = rng.normal(size=m.loc[m.index > cut].shape) * 50
    np.testing.assert_array_equal(seed_ensemble(perturbed).loc[:cut].to_numpy(),
                                  before.to_numpy())
    truncated = [m.loc[:cut] for m in members]
    np.testing.assert_array_equal(seed_ensemble(truncated).to_numpy(), before.to_numpy())


def _noisy_seeds(rng, signal: np.ndarray, noise: float, n_seeds: int) -> dict:
    return {seed: _frame(signal + noise * rng.normal(size=signal.shape), DATES[:len(signal)])
            for seed in range(1, n_seeds + 1)}


def test_table_scores_each_ensemble_and_pairs_it_with_storms():
    rng = np.random.default_rng(4)
    n_valid, n_test = 60, len(DATES) - 60
    alpha = rng.normal(size=(len(DATES), len(TICKERS)))
    realised = _frame(0.3 * alpha + rng.normal(size=alpha.shape))
    valid_dates, test_dates = DATES[:n_valid], DATES[n_valid:]

    def seeds(noise, n):
        v = _noisy_seeds(rng, alpha[:n_valid], noise, n)
        t = {s: _frame(alpha[n_valid:] + noise * rng.normal(size=(n_test, len(TICKERS))),
                       test_dates) for s in v}
        return v, t

    storm_v, storm_t = seeds(3.0, 5)
    lstm_v, lstm_t = seeds(6.0, 3)
    solo_v, solo_t = seeds(1.0, 1)                          # one seed: no ensemble
    table, daily = ensemble_table({"storm": storm_t, "lstm": lstm_t, "solo": solo_t},
                                  {"storm": storm_v, "lstm": lstm_v, "solo": solo_v},
                                  realised, 5, reference="storm")
    table = table.set_index("model")
    assert list(table.index) == ["storm", "lstm"]
    assert table.loc["storm", "seeds"] == "1 2 3 4 5" and table.loc["lstm", "n_seeds"] == 3

    # Validation: the ensemble's RankIC against the mean of its members', on the same days.
    members = [ic_summary(storm_v[s], realised.loc[valid_dates])["RankIC"] for s in storm_v]
    assert table.loc["storm", "valid_RankIC_members"] == pytest.approx(np.mean(members))
    assert table.loc["storm", "valid_RankIC_members_se"] == pytest.approx(
        np.std(members, ddof=1) / np.sqrt(5))
    ens_v = seed_ensemble(list(storm_v.values()))
    assert table.loc["storm", "valid_RankIC"] == pytest.approx(
        ic_summary(ens_v, realised.loc[valid_dates])["RankIC"])
    assert table.loc["storm", "valid_gain"] == pytest.approx(
        table.loc["storm", "valid_RankIC"] - table.loc["storm", "valid_RankIC_members"])
    # Independent errors average out: five seeds rank better than one, on both periods.
    assert table.loc["storm", "valid_gain"] > 0.02
    test_members = [ic_summary(storm_t[s], realised.loc[test_dates])["RankIC"] for s in storm_t]
    assert table.loc["storm", "RankIC"] > np.mean(test_members) + 0.02

    # Test: each ensemble's daily RankIC, paired with STORM's ensemble day by day.
    ens_t = {m: seed_ensemble(list(t.values())) for m, t in (("storm", storm_t),
                                                              ("lstm", lstm_t))}
    ric = {m: daily_rank_ic(e, realised.loc[test_dates]) for m, e in ens_t.items()}
    got = daily[daily["model"] == "lstm"].set_index("date")["RankIC"]
    np.testing.assert_allclose(got.to_numpy(), ric["lstm"].to_numpy())
    d = paired_difference(ric["lstm"], ric["storm"])
    assert table.loc["lstm", "RankIC_vs_ref"] == pytest.approx(d["diff"])
    assert table.loc["lstm", "t_vs_ref"] == pytest.approx(d["t"])
    assert table.loc["lstm", "valid_vs_ref"] == pytest.approx(
        table.loc["lstm", "valid_RankIC"] - table.loc["storm", "valid_RankIC"])
    assert np.isnan(table.loc["storm", ["RankIC_vs_ref", "t_vs_ref", "valid_vs_ref"]]
                    .astype(float)).all()
