"""Factor runs split by seed merge into the table of one run over every seed.

A long benchmark is run seed by seed (to share the cores, or to resume after a stop), and
its tables must then read as one evaluation: `storm_bt.backtest.factors.merge_runs`.
"""
from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from storm_bt.backtest.cli import main
from storm_bt.backtest.factors import merge_runs
from storm_bt.errors import StormBtError
from storm_bt.experiments.factors import pair_by_seed
from storm_bt.evaluation.significance import paired_difference

SLICE = ["--tickers", "AAPL", "AMD", "BAC", "JNJ", "JPM", "KO", "MSFT", "PG", "XOM", "WMT",
         "--train-start", "2013-01-01", "--valid-start", "2017-01-01",
         "--test-start", "2018-01-01", "--test-end", "2018-06-29", "--models", "lightgbm"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One run of seeds 1 and 2, and the same seeds as two runs of one seed each."""
    root = tmp_path_factory.mktemp("merge")
    for name, seeds in (("both", ["1", "2"]), ("one", ["1"]), ("two", ["2"])):
        assert main(["factors", *SLICE, "--seeds", *seeds, "--out", str(root / name),
                     "--log-level", "WARNING"]) == 0
    return root


def test_runs_split_by_seed_merge_into_the_table_of_one_run(runs):
    table, daily, _ = merge_runs([runs / "one", runs / "two"])
    whole = pd.read_csv(runs / "both" / "factors.csv")
    assert table["seed"].tolist() == [1, 2]
    scores = ["IC", "ICIR", "RankIC", "RankICIR", "n_days", "Q5_Q1"]
    np.testing.assert_allclose(table[scores].to_numpy(float), whole[scores].to_numpy(float),
                               rtol=1e-12)
    assert table[scores[0]].iloc[0] != table[scores[0]].iloc[1]  # two different fits
    whole_daily = pd.read_csv(runs / "both" / "daily_ic.csv", parse_dates=["date"])
    pd.testing.assert_frame_equal(daily.reset_index(drop=True), whole_daily)


def test_a_seed_in_two_runs_is_refused(runs):
    with pytest.raises(StormBtError, match="lightgbm seed 1 is in more than one run"):
        merge_runs([runs / "both", runs / "one"])


def test_runs_of_other_training_settings_are_refused(runs, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(runs / "two", other)
    record = json.loads((other / "config.json").read_text())
    record["config"]["model_settings"]["preset"] = "paper"
    (other / "config.json").write_text(json.dumps(record))
    with pytest.raises(StormBtError, match="model_settings.preset differs"):
        merge_runs([runs / "one", other])
    (other / "daily_ic.csv").unlink()
    with pytest.raises(StormBtError, match="daily_ic.csv: missing"):
        merge_runs([runs / "one", other])


def test_runs_of_other_set_overrides_are_refused_and_older_records_have_none(runs, tmp_path):
    other, older = tmp_path / "other", tmp_path / "older"
    shutil.copytree(runs / "two", other)
    shutil.copytree(runs / "two", older)
    record = json.loads((other / "config.json").read_text())
    record["config"]["model_settings"]["overrides"] = ["stocks_per_step=128"]
    (other / "config.json").write_text(json.dumps(record))
    with pytest.raises(StormBtError, match="model_settings.overrides differs"):
        merge_runs([runs / "one", other])
    record = json.loads((older / "config.json").read_text())
    del record["config"]["model_settings"]["overrides"]      # recorded before --set existed
    (older / "config.json").write_text(json.dumps(record))
    table, _, _ = merge_runs([runs / "one", older])
    assert table["seed"].tolist() == [1, 2]


def test_the_same_file_named_by_another_path_merges_other_prices_do_not(runs, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(runs / "two", other)
    record = json.loads((other / "config.json").read_text())
    record["config"]["data"]["data"] = "./elsewhere/../same_prices.csv"
    record["data"]["source"] = "./elsewhere/../same_prices.csv"
    (other / "config.json").write_text(json.dumps(record))
    table, _, _ = merge_runs([runs / "one", other])
    assert table["seed"].tolist() == [1, 2]
    record["data"]["fingerprint"] = "0" * 16
    (other / "config.json").write_text(json.dumps(record))
    with pytest.raises(StormBtError, match="data.fingerprint differs"):
        merge_runs([runs / "one", other])


def test_each_seed_is_paired_with_the_references_same_seed():
    dates = pd.bdate_range("2021-01-04", periods=60)
    rng = np.random.default_rng(0)

    def series(model, seed):
        return pd.DataFrame({"date": dates, "model": model, "seed": seed,
                             "RankIC": rng.normal(0.01, 0.05, len(dates))})

    daily = pd.concat([series("storm", 1), series("storm", 2), series("lstm", 2),
                       series("lstm", 3)], ignore_index=True)
    table = pd.DataFrame({"model": ["storm", "storm", "lstm", "lstm"], "seed": [1, 2, 2, 3]})
    paired = pair_by_seed(table, daily)
    own = daily[(daily["model"] == "lstm") & (daily["seed"] == 2)].set_index("date")["RankIC"]
    ref = daily[(daily["model"] == "storm") & (daily["seed"] == 2)].set_index("date")["RankIC"]
    expected = paired_difference(own, ref)
    assert paired.loc[2, "RankIC_vs_ref"] == pytest.approx((own - ref).mean(), rel=1e-12)
    assert paired.loc[2, "t_vs_ref"] == pytest.approx(expected["t"], rel=1e-12)
    # The reference itself, and a seed the reference lacks, have no pairing.
    assert paired.loc[[0, 1, 3], "RankIC_vs_ref"].isna().all()
