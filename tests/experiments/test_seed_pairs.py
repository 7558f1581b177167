"""The factor table says what each fit was chosen on, and compares it with STORM seed by seed.

Issue 9's validation target is paired over seeds: each model's validation selection score
minus STORM's on the same seed. factors.csv records the score (`valid_score`, the training
log's best smoothed validation RankIC) and factors.md pairs it, and the test RankIC, with
STORM's same seed (`storm_bt.experiments.factors.seed_pairs`).
"""
from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest

from storm_bt.backtest.cli import main
from storm_bt.experiments.factors import pair_by_seed, seed_pairs
from storm_bt.models.neural.checkpoint import load_checkpoint

SLICE = ["--tickers", "AAPL", "AMD", "BAC", "JNJ", "JPM", "KO", "MSFT", "PG", "XOM", "WMT",
         "--train-start", "2013-01-01", "--valid-start", "2017-01-01",
         "--test-start", "2018-01-01", "--test-end", "2018-03-29"]


def _table() -> pd.DataFrame:
    """STORM on seeds 1-3, the LSTM on seeds 2-4, LightGBM (no validation score) on 1-2."""
    return pd.DataFrame({
        "model": ["storm"] * 3 + ["lstm"] * 3 + ["lightgbm"] * 2,
        "seed": [1, 2, 3, 2, 3, 4, 1, 2],
        "RankIC": [0.010, 0.004, 0.008, 0.012, 0.001, 0.050, 0.003, 0.009],
        "valid_score": [0.020, 0.025, 0.018, 0.021, 0.030, 0.100, np.nan, np.nan],
    })


def test_each_model_is_paired_with_storms_same_seeds_only():
    pairs = seed_pairs(_table()).set_index("model")
    lstm = pairs.loc["lstm"]
    assert lstm["seeds"] == "2 3"                       # seed 4 has no STORM to pair with
    valid = np.array([0.021 - 0.025, 0.030 - 0.018])
    assert lstm["valid_diff"] == pytest.approx(valid.mean(), abs=1e-15)
    assert lstm["valid_se"] == pytest.approx(valid.std(ddof=1) / math.sqrt(2), abs=1e-15)
    assert lstm["valid_ahead"] == "1 of 2"
    test = np.array([0.012 - 0.004, 0.001 - 0.008])
    assert lstm["RankIC_diff"] == pytest.approx(test.mean(), abs=1e-15)
    assert lstm["RankIC_ahead"] == "1 of 2"
    # A model without a validation score is compared on the test period only.
    lgbm = pairs.loc["lightgbm"]
    assert math.isnan(lgbm["valid_diff"]) and lgbm["valid_ahead"] == ""
    assert lgbm["RankIC_diff"] == pytest.approx(np.mean([0.003 - 0.010, 0.009 - 0.004]))
    assert "storm" not in pairs.index


def test_without_storm_there_is_nothing_to_pair():
    table = _table()
    assert seed_pairs(table[table["model"] != "storm"]).empty


def test_the_validation_difference_sits_on_each_row():
    table = _table()
    daily = pd.DataFrame({"date": pd.Timestamp("2021-01-04"), "model": table["model"],
                          "seed": table["seed"], "RankIC": table["RankIC"]})
    paired = pair_by_seed(table, daily)
    assert paired.loc[3, "valid_vs_ref"] == pytest.approx(0.021 - 0.025)   # lstm seed 2
    assert paired.loc[[0, 1, 2, 5, 6, 7], "valid_vs_ref"].isna().all()


@pytest.mark.slow
def test_factors_records_the_score_each_fit_was_selected_on(tmp_path):
    out, cache = tmp_path / "f", tmp_path / "cache"
    assert main(["factors", *SLICE, "--models", "storm", "lightgbm", "--preset", "tiny",
                 "--epochs", "2", "--threads", "1", "--seeds", "1", "--cache-dir", str(cache),
                 "--out", str(out), "--log-level", "WARNING"]) == 0
    table = pd.read_csv(out / "factors.csv").set_index("model")
    [checkpoint] = cache.glob("storm-*.pt")
    train_log = load_checkpoint(checkpoint)["train_log"]
    assert table.loc["storm", "valid_score"] == pytest.approx(
        train_log["best_smoothed_rank_ic"], rel=1e-12)
    assert table.loc["storm", "best_epoch"] == train_log["best_epoch"]
    assert math.isnan(table.loc["lightgbm", "valid_score"])
    assert not (out / "ensembles.csv").exists()          # one seed: nothing to average
    text = (out / "factors.md").read_text()
    assert "valid_score" in text and "paired by seed" in text
    row = next(line for line in text.splitlines()
               if line.startswith("| lightgbm") and "ahead" in line)
    assert "| —" in row                                  # no validation score to pair
    assert re.search(r"[+-]0\.\d{4} \([01] of 1 ahead\)", row)   # the test RankIC is paired
