"""A new user's own files run with the defaults (issue 11, section 1), end to end."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from storm_bt.backtest.cli import main
from storm_bt.data import load_panel

SIX = ["AAPL", "BAC", "JNJ", "KO", "MSFT", "XOM"]


@pytest.fixture(scope="module")
def short_history(tmp_path_factory) -> Path:
    """A long CSV of 6 stocks from 2015-01-02 only: the default splits do not fit it."""
    frame = load_panel(None, SIX).field("close").loc["2015-01-02":]
    long = frame.rename_axis(index="date", columns="ticker").stack().rename("close").reset_index()
    long["date"] = long["date"].dt.strftime("%Y-%m-%d")
    path = tmp_path_factory.mktemp("user") / "six.csv"
    long.to_csv(path, index=False)
    return path


def _run(tmp_path, data: Path, name: str, *flags) -> Path:
    out = tmp_path / name
    assert main(["portfolio", "--data", str(data), "--model", "lightgbm", "--threads", "1",
                 "--log-level", "WARNING", "--out", str(out), *flags]) == 0
    return out


@pytest.mark.slow
def test_a_short_history_and_a_small_universe_run_with_no_flags(tmp_path, short_history):
    out = _run(tmp_path, short_history, "run")
    record = json.loads((out / "config.json").read_text())
    split = record["split"]
    assert split["source"] == "data" and split["train_start"] >= "2015-01-02"
    assert split["test_end"] == "2022-12-28"  # the data's last day
    assert record["max_weight"] == pytest.approx(2 / 6)  # 0.1 x 6 < 1: the cap adapts
    weights = pd.read_csv(out / "weights.csv").groupby("date")["weight"].sum()
    np.testing.assert_allclose(weights, 1.0, atol=1e-6)


@pytest.mark.slow
def test_shuffled_rows_give_the_sorted_files_results(tmp_path, short_history):
    shuffled = tmp_path / "shuffled.csv"
    pd.read_csv(short_history).sample(frac=1.0, random_state=0).to_csv(shuffled, index=False)
    a = _run(tmp_path, short_history, "sorted")
    b = _run(tmp_path, shuffled, "shuffled")
    for name in ("metrics.json", "predictions.csv", "weights.csv", "equity.csv"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_an_explicit_date_outside_the_data_stays_an_error(tmp_path, short_history, capsys):
    code = main(["portfolio", "--data", str(short_history), "--train-start", "2008-01-01",
                 "--model", "lightgbm", "--out", str(tmp_path / "x")])
    assert code == 2
    assert "--train-start 2008-01-01" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_flags_take_iso_dates_only(tmp_path, short_history, capsys):
    code = main(["portfolio", "--data", str(short_history), "--test-start", "01/06/2021",
                 "--model", "lightgbm", "--out", str(tmp_path / "x")])
    assert code == 2 and "YYYY-MM-DD" in capsys.readouterr().err
