"""The command line end to end: outputs of a real run, look-ahead, and bad input.

Bad input must give one line on stderr naming what is wrong, exit status 2, no traceback
and no output files. Runs use the embedded sample (ships with skfolio), a short slice and
LightGBM or a tiny STORM so that the file stays fast.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from storm_bt.backtest.cli import main
from storm_bt.data import load_panel

TICKERS = ["AAPL", "AMD", "BAC", "JNJ", "JPM", "KO", "MSFT", "PG", "XOM", "WMT"]
SLICE = ["--tickers", *TICKERS, "--train-start", "2013-01-01", "--valid-start", "2017-01-01",
         "--test-start", "2018-01-01"]


def _cli(*argv: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run `python -m storm_bt.backtest` in a subprocess (real stderr and exit status)."""
    argv = (*argv, "--log-level", "WARNING")  # progress logs also go to stderr
    return subprocess.run([sys.executable, "-m", "storm_bt.backtest", *argv], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def long_csv(tmp_path_factory) -> Path:
    """A valid long CSV (date,ticker,close) cut from the embedded sample, 2012-2019."""
    panel = load_panel(None, TICKERS[:6])
    frame = panel.field("close").loc["2012-01-01":"2019-12-31"]
    long = frame.rename_axis(index="date", columns="ticker").stack().rename("close").reset_index()
    long = long.sort_values(["ticker", "date"])
    long["date"] = long["date"].dt.strftime("%Y-%m-%d")
    path = tmp_path_factory.mktemp("data") / "prices.csv"
    long.to_csv(path, index=False)
    return path


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def test_portfolio_run_writes_every_output(tmp_path):
    out = tmp_path / "run"
    code = main(["portfolio", *SLICE, "--test-end", "2019-06-28", "--model", "lightgbm",
                 "--out", str(out), "--log-level", "WARNING"])
    assert code == 0
    names = {p.name for p in out.iterdir()}
    assert {"tearsheet.html", "metrics.json", "predictions.csv", "weights.csv", "equity.csv",
            "equity.png", "config.json"} <= names
    assert not [n for n in names if n.startswith(".") or n.endswith(".tmp")]
    metrics = json.loads((out / "metrics.json").read_text())
    equity = pd.read_csv(out / "equity.csv", parse_dates=["date"])
    # The reported cumulative wealth is the equity curve's own end/start ratio.
    assert metrics["portfolio"]["cumulative_wealth"] == pytest.approx(
        equity["equity"].iloc[-1] / equity["equity"].iloc[0], rel=1e-9)
    weights = pd.read_csv(out / "weights.csv")
    sums = weights.groupby("date")["weight"].sum()
    assert (sums <= 1 + 1e-6).all() and (weights["weight"] <= 0.1 + 1e-6).all()
    config = json.loads((out / "config.json").read_text())
    assert config["data"]["fingerprint"] and config["versions"]["torch"]
    assert config["arguments"]["model"] == "lightgbm"
    html = (out / "tearsheet.html").read_text()
    assert "Sharpe" in html and "Drawdown" in html


def test_portfolio_same_seed_same_numbers(tmp_path):
    args = ["portfolio", *SLICE, "--test-end", "2018-06-29", "--model", "storm", "--preset",
            "tiny", "--epochs", "1", "--threads", "1", "--cache-dir", str(tmp_path / "cache"),
            "--retrain", "--log-level", "WARNING"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    assert main([*args, "--out", str(tmp_path / "b")]) == 0
    for name in ("predictions.csv", "weights.csv", "equity.csv"):
        assert (tmp_path / "a" / name).read_text() == (tmp_path / "b" / name).read_text(), name


@pytest.mark.parametrize("model", [
    ["--model", "lightgbm"],
    ["--model", "storm", "--preset", "tiny", "--epochs", "1", "--threads", "1", "--retrain"],
])
def test_portfolio_decisions_ignore_data_after_them(tmp_path, model):
    """Cutting the data at X changes nothing decided before X (model, weights, trades)."""
    cut, full = tmp_path / "cut", tmp_path / "full"
    common = ["portfolio", *SLICE, *model, "--cache-dir", str(tmp_path / "cache"),
              "--log-level", "WARNING"]
    assert main([*common, "--test-end", "2018-06-29", "--out", str(cut)]) == 0
    assert main([*common, "--test-end", "2018-12-31", "--out", str(full)]) == 0
    for name, key in (("predictions.csv", "prediction"), ("weights.csv", "weight")):
        a = pd.read_csv(cut / name)
        b = pd.read_csv(full / name)
        b = b[b["date"] <= a["date"].max()]
        pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True))
        assert len(a) > 0, name
    ea = pd.read_csv(cut / "equity.csv")
    eb = pd.read_csv(full / "equity.csv").iloc[: len(ea)]
    # The last day of the short run is its end: the book was marked, not traded, there.
    np.testing.assert_allclose(ea["equity"], eb["equity"], rtol=1e-12)


def test_factors_table_and_csv(tmp_path):
    out = tmp_path / "f"
    code = main(["factors", *SLICE, "--test-end", "2018-12-31", "--models", "lightgbm",
                 "--seeds", "1", "2", "--out", str(out), "--log-level", "WARNING"])
    assert code == 0
    table = pd.read_csv(out / "factors.csv")
    assert list(table.columns[:6]) == ["model", "seed", "IC", "ICIR", "RankIC", "RankICIR"]
    assert table["seed"].tolist() == [1, 2]
    daily = pd.read_csv(out / "daily_ic.csv")
    first = daily[daily["seed"] == 1]
    # The summary IC is the mean of the daily series it was written beside.
    assert table.loc[0, "IC"] == pytest.approx(first["IC"].mean(), rel=1e-9)
    assert "| lightgbm" in (out / "factors.md").read_text()


@pytest.mark.parametrize("edit, needle", [
    (lambda ls: [ls[0].replace("close", "price")] + ls[1:], "missing column 'close'"),
    (lambda ls: ls[:5] + [ls[5].rsplit(",", 1)[0] + ","] + ls[6:], "line 6: column 'close' is empty"),
    (lambda ls: ls[:5] + [ls[5].rsplit(",", 1)[0] + ",-3.5"] + ls[6:], "line 6: column 'close' = -3.5"),
    (lambda ls: ls[:5] + [ls[4]] + ls[5:], "duplicate row"),
    (lambda ls: [ls[0], ls[2], ls[1]] + ls[3:], "not in date order"),
])
def test_bad_csv_is_one_line_and_no_output(tmp_path, long_csv, edit, needle):
    bad = _write(tmp_path / "bad.csv", edit(_lines(long_csv)))
    out = tmp_path / "out"
    result = _cli("portfolio", "--data", str(bad), "--out", str(out), "--model", "lightgbm")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")
    assert "Traceback" not in result.stderr
    assert str(bad) in result.stderr and needle in result.stderr, result.stderr
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize("argv, needle", [
    (["--tickers", "AAPL", "NOPE"], "NOPE"),
    (["--test-start", "2030-01-01", "--test-end", "2031-01-01"], "--test-start 2030-01-01 is outside the data"),
    (["--train-start", "2017-06-01"], "too little training data"),
    (["--data", "/no/such/file.csv"], "/no/such/file.csv: no such file"),
    (["--max-weight", "0.01"], "--max-weight 0.01"),
])
def test_bad_arguments_are_one_line(tmp_path, argv, needle):
    out = tmp_path / "out"
    result = _cli("portfolio", *argv, "--out", str(out), "--model", "lightgbm")
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: "), result.stderr
    assert needle in result.stderr
    assert not out.exists() or not any(out.iterdir())


def test_unwritable_out_is_one_line(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    result = _cli("portfolio", *SLICE, "--out", str(blocker / "run"), "--model", "lightgbm")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and str(blocker) in result.stderr
    assert blocker.read_text() == "not a folder"


def test_a_run_that_fails_while_writing_leaves_no_file(tmp_path, monkeypatch):
    import reports

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(reports, "write_tearsheet", broken)
    out = tmp_path / "run"
    with pytest.raises(RuntimeError, match="disk full"):
        main(["portfolio", *SLICE, "--test-end", "2018-03-29", "--model", "lightgbm",
              "--out", str(out), "--log-level", "WARNING"])
    assert out.is_dir() and list(out.iterdir()) == []
