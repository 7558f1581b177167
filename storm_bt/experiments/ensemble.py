"""Seed ensembles: one score per (date, stock) from several fits of the same model.

A fit's scores are only defined up to a monotone map, and two seeds can score on different
scales, so each seed's predictions are standardised across the stocks of each day before
they are averaged:

    z^k_{t,s} = (p^k_{t,s} - mean_s p^k_{t,.}) / std_s p^k_{t,.}     (seed k, day t, stock s)
    e_{t,s}   = mean over the seeds k that score (t, s) of z^k_{t,s}

Every member was trained and selected on the train / valid ranges only, so the ensemble is a
fixed recipe (fit K seeds, average) whose test score enters no choice. Whether the recipe is
worth its K fits is read on validation: the ensemble's validation RankIC against the mean of
its members' validation RankICs, both from the restored checkpoints over the whole
validation range (the members' training selection score is the best of several epochs, so it
is not comparable). On the test period each model's ensemble is compared with the reference
model's (STORM's) day by day: d_t = RankIC_t(model) - RankIC_t(reference), with a
Newey-West t-statistic (`storm_bt.evaluation.significance`).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from storm_bt.evaluation import ic_summary, score_predictions, zscore_rows
from storm_bt.evaluation.significance import paired_difference

#: the columns of `ensemble_table`, in order
ENSEMBLE_COLUMNS = ["model", "seeds", "n_seeds", "valid_RankIC_members",
                    "valid_RankIC_members_se", "valid_RankIC", "valid_gain", "IC", "ICIR",
                    "RankIC", "RankICIR", "Q5_Q1", "n_days", "RankIC_vs_ref", "t_vs_ref",
                    "valid_vs_ref"]


def zscore_by_day(predictions: pd.DataFrame) -> pd.DataFrame:
    """Each row (day) standardised across its non-missing stocks; a row with fewer than two
    scores or no spread becomes NaN (it carries no ranking)."""
    z = zscore_rows(predictions.to_numpy(dtype=float), flat=np.nan)
    return pd.DataFrame(z, index=predictions.index, columns=predictions.columns)


def seed_ensemble(members: list[pd.DataFrame]) -> pd.DataFrame:
    """The mean of the members' day-standardised scores (module docstring); the members must
    share their index and columns (one model's predictions for several seeds)."""
    if not members:
        raise ValueError("seed_ensemble needs at least one member")
    first = members[0]
    for other in members[1:]:
        if not (other.index.equals(first.index) and other.columns.equals(first.columns)):
            raise ValueError("seed_ensemble: members must share dates and tickers")
    stacked = np.stack([zscore_by_day(m).to_numpy() for m in members])
    count = np.isfinite(stacked).sum(axis=0)
    total = np.nansum(stacked, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    return pd.DataFrame(mean, index=first.index, columns=first.columns)


def ensemble_table(test: dict[str, dict[int, pd.DataFrame]],
                   valid: dict[str, dict[int, pd.DataFrame]], realised: pd.DataFrame,
                   n_quantiles: int, reference: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(table, daily) of the seed ensemble of every model with at least two seeds.

    ``test`` and ``valid`` map model -> seed -> predictions (date x ticker) on the test and
    validation ranges; ``realised`` holds the next-day returns of every date. The table has
    one row per model (`ENSEMBLE_COLUMNS`); daily has date, model, IC, RankIC of each
    ensemble on the test period. RankIC_vs_ref / t_vs_ref pair each ensemble's daily RankIC
    with the reference's ensemble (NaN for the reference and without one); valid_vs_ref is
    its validation RankIC minus the reference ensemble's.
    """
    rows, dailies = [], []
    for model, by_seed in test.items():
        seeds = sorted(by_seed)
        if len(seeds) < 2:
            continue
        ensemble = seed_ensemble([by_seed[s] for s in seeds])
        scores, daily = score_predictions(ensemble, realised, n_quantiles)
        dailies.append(daily.assign(model=model)[["model", "IC", "RankIC"]])
        row = {"model": model, "seeds": " ".join(map(str, seeds)), "n_seeds": len(seeds),
               **{k: scores[k] for k in ("IC", "ICIR", "RankIC", "RankICIR", "Q5_Q1", "n_days")}}
        members = [valid[model][s] for s in seeds if s in valid.get(model, {})]
        if len(members) == len(seeds):
            real_v = realised.reindex(index=members[0].index, columns=members[0].columns)
            each = np.array([ic_summary(m, real_v)["RankIC"] for m in members])
            row["valid_RankIC_members"] = float(each.mean())
            row["valid_RankIC_members_se"] = float(each.std(ddof=1) / np.sqrt(each.size))
            row["valid_RankIC"] = ic_summary(seed_ensemble(members), real_v)["RankIC"]
            row["valid_gain"] = row["valid_RankIC"] - row["valid_RankIC_members"]
        rows.append(row)
    table = pd.DataFrame(rows, columns=ENSEMBLE_COLUMNS)
    table = table.astype({c: float for c in ENSEMBLE_COLUMNS[3:]} | {"n_seeds": int})
    daily = (pd.concat(dailies).rename_axis("date").reset_index() if dailies
             else pd.DataFrame(columns=["date", "model", "IC", "RankIC"]))
    if reference in set(table["model"]):
        ref_daily = daily[daily["model"] == reference].set_index("date")["RankIC"]
        ref_valid = float(table.loc[table["model"] == reference, "valid_RankIC"].iloc[0])
        for i, model in table["model"].items():
            if model == reference:
                continue
            d = paired_difference(daily[daily["model"] == model].set_index("date")["RankIC"],
                                  ref_daily)
            table.loc[i, ["RankIC_vs_ref", "t_vs_ref"]] = d["diff"], d["t"]
            table.loc[i, "valid_vs_ref"] = float(table.loc[i, "valid_RankIC"]) - ref_valid
    return table, daily
