"""The command line end to end: outputs of a real run, look-ahead, and bad input.

Bad input must give one line on stderr naming what is wrong, exit status 2, no traceback
and no output files. Runs use the embedded sample (ships with skfolio), a short slice and
LightGBM or a tiny STORM so that the file stays fast.
"""
from __future__ import annotations

import json
import logging
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


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


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
    # Ten tickers: the default cap of 0.1 is raised to 2/10 (logged), and the book is full.
    np.testing.assert_allclose(sums, 1.0, atol=1e-6)
    assert (weights["weight"] <= 0.2 + 1e-6).all() and (weights["weight"] > 0.1 + 1e-3).any()
    config = json.loads((out / "config.json").read_text())
    assert config["data"]["fingerprint"] and config["versions"]["torch"]
    assert config["machine"]["cpu"] and config["machine"]["logical_cores"] >= 1
    assert config["config"]["model"] == "lightgbm"
    html = (out / "tearsheet.html").read_text()
    assert "Sharpe" in html and "Drawdown" in html


@pytest.mark.parametrize("command, page", [
    (["portfolio", "--model", "lightgbm"], "tearsheet.html"),
    (["factors", "--models", "lightgbm", "--seeds", "1"], "factor_sheets.html"),
])
def test_progress_log_names_the_run_folder_not_its_staging_folder(tmp_path, caplog, command,
                                                                   page):
    """Outputs are written in a hidden staging folder, then moved: a log line naming a file
    in the staging folder would send the user to a path that no longer exists."""
    out = tmp_path / "run"
    with caplog.at_level(logging.INFO):
        code = main([*command, *SLICE, "--test-end", "2018-03-29", "--out", str(out),
                     "--log-level", "INFO"])
    assert code == 0
    info = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert not [m for m in info if ".staging-" in m], info
    assert any(f"open {out / page}" in m for m in info), info


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
    # Two seeds make a seed ensemble, scored on validation and test beside the seeds.
    ensembles = pd.read_csv(out / "ensembles.csv")
    assert ensembles["model"].tolist() == ["lightgbm"] and ensembles.loc[0, "seeds"] == "1 2"
    assert np.isfinite(ensembles.loc[0, ["valid_RankIC", "valid_RankIC_members", "RankIC",
                                         "RankICIR"]].astype(float)).all()
    ens_daily = pd.read_csv(out / "ensemble_daily_ic.csv")
    assert ensembles.loc[0, "RankIC"] == pytest.approx(ens_daily["RankIC"].mean(), rel=1e-9)
    assert ensembles.loc[0, "n_days"] == table.loc[0, "n_days"]
    assert "Seed ensembles" in (out / "factors.md").read_text()
    # The factor tear sheet links every picture it wrote, next to factors.md.
    page = (out / "factor_sheets.html").read_text()
    pictures = sorted((out / "factor_sheets").rglob("*.png"))
    assert len(pictures) >= 5
    for picture in pictures:
        assert f'src="{picture.relative_to(out).as_posix()}"' in page, picture


@pytest.mark.parametrize("edit, needle", [
    (lambda ls: [ls[0].replace("close", "price")] + ls[1:], "missing column 'close'"),
    (lambda ls: ls[:5] + [ls[5].rsplit(",", 1)[0] + ","] + ls[6:], "line 6: column 'close' is empty"),
    (lambda ls: ls[:5] + [ls[5].rsplit(",", 1)[0] + ",-3.5"] + ls[6:], "line 6: column 'close' = -3.5"),
    (lambda ls: ls[:5] + [ls[4]] + ls[5:], "duplicate row"),
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


@pytest.mark.parametrize("command", ["portfolio", "factors", "trading"])
def test_unwritable_cache_dir_is_one_line_before_any_fit(tmp_path, command):
    """A --cache-dir that cannot be created is refused up front (it used to end in a
    NotADirectoryError traceback from the checkpoint lock, after the data was read), and
    neither --out nor the cache gets a folder."""
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    out = tmp_path / "run"
    result = _cli(command, *SLICE, "--out", str(out), "--cache-dir", str(blocker / "cache"))
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: "), result.stderr
    assert str(blocker / "cache") in result.stderr and "--cache-dir" in result.stderr
    assert blocker.read_text() == "not a folder" and not out.exists()


def test_a_run_that_fails_while_writing_leaves_no_file(tmp_path, monkeypatch):
    import reports

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(reports, "write_tearsheet", broken)
    out = tmp_path / "run"
    with pytest.raises(RuntimeError, match="disk full"):
        main(["portfolio", *SLICE, "--test-end", "2018-03-29", "--model", "lightgbm",
              "--out", str(out), "--log-level", "WARNING"])
    assert not out.exists()  # the run folder appears only with its files


# ------------------------------------------------------------------ every option end to end
SHORT = [*SLICE, "--test-end", "2018-12-31", "--model", "lightgbm", "--threads", "1",
         "--log-level", "WARNING"]


def _sharpe(r: np.ndarray) -> float:
    return float(r.mean() / r.std(ddof=1) * np.sqrt(252))


def _max_drawdown(values: np.ndarray) -> float:
    peak = np.maximum.accumulate(values)
    return float(((peak - values) / peak).max())


def _check_metrics_against_equity(out: Path) -> None:
    """metrics.json's Sharpe and drawdown are those of equity.csv, recomputed here."""
    metrics = json.loads((out / "metrics.json").read_text())["portfolio"]
    equity = pd.read_csv(out / "equity.csv")
    values = equity["equity"].to_numpy()
    r = values[1:] / values[:-1] - 1.0
    assert metrics["sharpe"] == pytest.approx(_sharpe(r), rel=1e-6)
    assert metrics["max_drawdown"] == pytest.approx(_max_drawdown(values), rel=1e-6)
    assert metrics["cumulative_wealth"] == pytest.approx(values[-1] / values[0], rel=1e-9)


@pytest.fixture(scope="module")
def benchmark_file(tmp_path_factory) -> Path:
    """A long benchmark file (date,ticker,adj_close) holding one series, 'IDX'."""
    closes = load_panel(None, ["KO"]).field("close")["KO"].loc["2012-01-01":"2019-12-31"]
    frame = pd.DataFrame({"date": closes.index.strftime("%Y-%m-%d"), "ticker": "IDX",
                          "adj_close": closes.to_numpy()})
    path = tmp_path_factory.mktemp("bench") / "index.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.mark.slow
@pytest.mark.parametrize("flags, check", [
    (["--rebalance", "3", "--cost-bps", "25", "--max-weight", "0.2"], "long-only"),
    (["--long-short", "--gross-limit", "1.5", "--max-weight", "0.3"], "long-short"),
    (["--optimizer", "topk", "--topk", "4", "--n-drop", "2"], "topk"),
    (["--benchmark", "BENCH:IDX"], "benchmark"),
])
def test_every_portfolio_option_runs_end_to_end(tmp_path, benchmark_file, flags, check):
    flags = [f.replace("BENCH", str(benchmark_file)) for f in flags]
    out = tmp_path / "run"
    assert main(["portfolio", *SHORT, *flags, "--out", str(out)]) == 0
    _check_metrics_against_equity(out)
    weights = pd.read_csv(out / "weights.csv")
    w = weights.pivot(index="date", columns="ticker", values="weight").fillna(0.0)
    record = json.loads((out / "config.json").read_text())
    if check in ("long-only", "benchmark"):
        cap = record["max_weight"]  # the cap used: the flag's, or the default for 10 tickers
        assert cap == (0.2 if check == "long-only" else pytest.approx(2 / len(TICKERS)))
        # A long-only book is fully invested: every rebalance sums to 1, within the caps.
        np.testing.assert_allclose(w.sum(axis=1), 1.0, atol=1e-6)
        assert (w.to_numpy() >= -1e-8).all() and (w.to_numpy() <= cap + 1e-6).all()
    if check == "long-short":
        np.testing.assert_allclose(w.sum(axis=1), 0.0, atol=1e-6)  # dollar neutral
        assert (w.abs().to_numpy() <= 0.3 + 1e-6).all()
        assert (w.abs().sum(axis=1) <= 1.5 + 1e-6).all()
        assert (w.abs().sum(axis=1) > 0.1).all()  # it does take positions
        assert (w.to_numpy() < -1e-4).any()
    if check == "topk":
        held = (w > 1e-9).sum(axis=1)
        assert (held == 4).all()
        held_weights = w.to_numpy()[w.to_numpy() > 1e-9]
        np.testing.assert_allclose(held_weights, 0.25)
        names = [set(row[row > 1e-9].index) for _, row in w.iterrows()]
        assert all(len(a - b) <= 2 for a, b in zip(names[1:], names[:-1]))  # n_drop
    if check == "benchmark":
        metrics = json.loads((out / "metrics.json").read_text())
        closes = pd.read_csv(benchmark_file, parse_dates=["date"]).set_index("date")["adj_close"]
        equity = pd.read_csv(out / "equity.csv", parse_dates=["date"])
        bench = closes.pct_change().reindex(equity["date"]).iloc[1:]
        assert metrics["benchmark"]["cumulative_wealth"] == pytest.approx(
            float((1 + bench).prod()), rel=1e-9)
    if check == "long-only":  # the cost reached the backtest: trading costs something
        equity = pd.read_csv(out / "equity.csv")
        free = tmp_path / "free"
        assert main(["portfolio", *SHORT, *flags[:2], "--cost-bps", "0", "--max-weight", "0.2",
                     "--out", str(free)]) == 0
        assert pd.read_csv(free / "equity.csv")["equity"].iloc[-1] > equity["equity"].iloc[-1]


def test_a_run_reruns_byte_identically_from_its_config(tmp_path):
    first, again = tmp_path / "first", tmp_path / "again"
    assert main(["portfolio", *SHORT, "--out", str(first)]) == 0
    assert main(["portfolio", "--config", str(first / "config.json"), "--out", str(again),
                 "--log-level", "WARNING"]) == 0
    for name in ("metrics.json", "predictions.csv", "weights.csv", "equity.csv"):
        assert (first / name).read_bytes() == (again / name).read_bytes(), name
    a = json.loads((first / "config.json").read_text())
    b = json.loads((again / "config.json").read_text())
    assert a["config"] == b["config"] and a["data"] == b["data"]


def test_threads_reach_lightgbm_and_seeds_are_recorded_as_given(tmp_path):
    out = tmp_path / "f"
    assert main(["factors", *SLICE, "--test-end", "2018-06-29", "--models", "lightgbm",
                 "--threads", "1", "--seed", "7", "--seeds", "3", "4", "--out", str(out),
                 "--log-level", "WARNING"]) == 0
    record = json.loads((out / "config.json").read_text())
    assert record["models"]["lightgbm"]["num_threads"] == 1
    assert record["config"]["seeds"] == [3, 4]
    assert record["config"]["model_settings"]["threads"] == 1


def test_set_changes_the_fit_is_recorded_and_reruns(tmp_path):
    """--set reaches the model and its training, keys the checkpoint (a fit without it is not
    reused) and is recorded, so --config reruns it."""
    base = ["factors", *SLICE, "--test-end", "2018-06-29", "--models", "storm", "--preset",
            "tiny", "--epochs", "1", "--threads", "1", "--seeds", "1",
            "--cache-dir", str(tmp_path / "cache"), "--log-level", "WARNING"]
    changed = ["--set", "storm:d_model=16", "--set", "stocks_per_step=4"]
    assert main([*base, "--out", str(tmp_path / "plain")]) == 0
    assert main([*base, *changed, "--out", str(tmp_path / "set")]) == 0
    plain = json.loads((tmp_path / "plain" / "config.json").read_text())
    record = json.loads((tmp_path / "set" / "config.json").read_text())
    assert record["config"]["model_settings"]["overrides"] == ["storm:d_model=16",
                                                              "stocks_per_step=4"]
    assert plain["config"]["model_settings"]["overrides"] == []
    storm, storm_plain = record["models"]["storm"], plain["models"]["storm"]
    assert storm["model"]["d_model"] == 16 and storm_plain["model"]["d_model"] == 32
    assert storm["train"]["stocks_per_step"] == 4
    set_table = pd.read_csv(tmp_path / "set" / "factors.csv")
    assert not set_table.equals(pd.read_csv(tmp_path / "plain" / "factors.csv"))
    assert "settings changed: storm:d_model=16 stocks_per_step=4" in \
        (tmp_path / "set" / "factors.md").read_text()
    assert main(["factors", "--config", str(tmp_path / "set" / "config.json"),
                 "--out", str(tmp_path / "again"), "--log-level", "WARNING"]) == 0
    assert (tmp_path / "again" / "factors.csv").read_bytes() == \
        (tmp_path / "set" / "factors.csv").read_bytes()


# ------------------------------------------------------------------ errors before any work
@pytest.mark.parametrize("argv, needle", [
    (["portfolio", "--optimizer", "topk", "--topk", "3", "--n-drop", "5"], "--n-drop 5"),
    (["portfolio", "--risk-aversion", "-1"], "--risk-aversion -1"),
    (["portfolio", "--turnover-penalty", "-1"], "--turnover-penalty -1"),
    (["portfolio", "--gross-limit", "-1", "--long-short"], "--gross-limit -1"),
    (["portfolio", "--cost-bps", "-5"], "--cost-bps -5"),
    (["portfolio", "--topk", "0", "--optimizer", "topk"], "--topk 0"),
    (["portfolio", "--rebalance", "0"], "--rebalance 0"),
    (["portfolio", "--epochs", "0"], "--epochs 0"),
    (["portfolio", "--benchmark", "/no/such.csv:SPY"], "/no/such.csv"),
    (["portfolio", "--ensemble", "4"], "--ensemble 4: an ensemble needs at least two seeds"),
    (["portfolio", "--ensemble", "1", "2", "--seeds", "3", "4"], "--seeds and --ensemble"),
    (["factors", "--quantiles", "1"], "--quantiles 1"),
    (["factors", "--model", "lightgbm"], "unrecognized arguments: --model"),
    (["factors", "--models", "alphago"], "alphago"),
    (["factors", "--models", "storm", "--set", "storm:foo=1"], "--set: storm: unknown setting 'foo'"),
    (["factors", "--models", "storm", "lstm", "--set", "enc_depth=1"],
     "--set: lstm: unknown setting 'enc_depth'"),
    (["factors", "--set", "epochs=3"], "epochs has its own flag (--epochs)"),
    (["factors", "--models", "storm", "--set", "d_model=1.5"],
     "d_model=1.5: expected an integer (the preset has 64)"),
    (["factors", "--models", "storm", "--set", "normalize_codes=1"], "expected True or False"),
    (["factors", "--set", "stocks_per_step"], "write KEY=VALUE or MODEL:KEY=VALUE"),
    (["portfolio", "--model", "storm", "--set", "lstm:hidden=8"], "lstm is not among"),
    (["portfolio", "--set", "lightgbm:num_leaves=8"], "lightgbm has no preset settings"),
    # an optimiser setting the chosen optimiser never reads (recorded and ignored before)
    (["portfolio", "--optimizer", "topk", "--long-short"],
     "--long-short: the topk optimizer does not use it; drop it or pass --optimizer "
     "mean-variance"),
    (["portfolio", "--optimizer", "topk", "--risk-aversion", "3"],
     "--risk-aversion: the topk optimizer does not use it"),
    (["portfolio", "--topk", "8"], "--topk: the mean-variance optimizer does not use it"),
    (["portfolio", "--gross-limit", "3"], "--gross-limit 3.0: it limits a long-short book"),
    (["portfolio", "--cost-bps", "20000"], "--cost-bps 20000.0: a cost of 200% of the traded value would leave nothing"),
    # a setting no model of the run reads (it was recorded in config.json and ignored)
    pytest.param(["portfolio", "--model", "storm", "--device", "cuda"],
                 "--device cuda: no CUDA device is available",
                 marks=pytest.mark.skipif(_has_cuda(), reason="this machine has a GPU")),
    (["portfolio", "--model", "lightgbm", "--set", "foo=bar"],
     "--set 'foo=bar': this run trains no neural model"),
    (["trading", "--models", "buy-and-hold", "--set", "hidden=8"],
     "--set 'hidden=8': this run trains no neural model"),
])
def test_bad_flags_fail_before_any_data_is_read(tmp_path, monkeypatch, capsys, argv, needle):
    """Each of these used to fail only after training (or, for --model, ran every model)."""
    import storm_bt.experiments.data as experiment_data

    def no_data(*args, **kwargs):
        raise AssertionError("data was loaded before the flags were checked")

    monkeypatch.setattr(experiment_data, "load_panel", no_data)
    out = tmp_path / "out"
    try:
        code = main([*argv, "--out", str(out), "--log-level", "WARNING"])
    except SystemExit as exc:  # argparse's own errors (unknown flag, bad choice)
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1, err
    assert not out.exists()


def test_existing_out_with_files_needs_overwrite(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    result = _cli("portfolio", *SHORT[:-2], "--out", str(out))
    assert result.returncode == 2 and "--overwrite" in result.stderr
    assert result.stderr.count("\n") == 1
    assert (out / "keep.txt").read_text() == "mine"


def test_out_check_ignores_write_probes_and_runs_on_rank_0_only(tmp_path, monkeypatch):
    """Under torchrun every rank parses the same --out; a rank's write probe, seen for a
    moment by rank 0's emptiness check, once failed a DDP run with "already holds files"."""
    import argparse

    from storm_bt.backtest.common import run_folder
    from storm_bt.errors import StormBtError

    out = tmp_path / "run"
    out.mkdir()
    (out / ".write-probe-0123abcd").write_text("")
    args = argparse.Namespace(out=str(out), overwrite=False)
    assert run_folder(args, "factors") == out
    (out / "keep.txt").write_text("mine")
    with pytest.raises(StormBtError, match="already holds files"):
        run_folder(args, "factors")
    monkeypatch.setenv("RANK", "1")  # a rank that does not write skips the check and the probe
    assert run_folder(argparse.Namespace(out=str(tmp_path / "absent"), overwrite=False),
                      "factors") == tmp_path / "absent"
    assert run_folder(args, "factors") == out
    assert not (tmp_path / "absent").exists()


def test_help_is_fast_and_loads_no_heavy_package():
    code = ("import sys, io, contextlib\n"
            "from storm_bt.backtest.cli import build_parser\n"
            "p = build_parser()\n"
            "for cmd in ('portfolio', 'factors', 'trading'):\n"
            "    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
            "        p.parse_args([cmd, '--help'])\n"
            "heavy = [m for m in ('torch', 'gymnasium', 'backtrader', 'stable_baselines3', 'cvxpy',"
            " 'quantstats', 'lightgbm') if m in sys.modules]\n"
            "print(','.join(heavy))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"--help imported {result.stdout.strip()}"


def test_bad_input_is_refused_before_any_heavy_package_loads(tmp_path):
    """Every input check of the three commands runs before torch, cvxpy, backtrader,
    scikit-learn and the rest are imported (seconds of start-up that a mistyped ticker or
    path should not cost); each refusal is still one line with exit status 2."""
    bad = tmp_path / "bad.csv"
    bad.write_text("date,ticker,price\n2020-01-02,AAA,1.0\n")
    overlapping = tmp_path / "members.csv"   # AAPL's two intervals overlap
    overlapping.write_text("ticker,start_date,end_date\nAAPL,2000-01-03,2010-01-04\n"
                           "AAPL,2005-01-03,\n")
    cases = [["portfolio", "--data", str(tmp_path / "absent.csv")],
             ["portfolio", "--membership", str(overlapping)],
             ["factors", "--membership", str(overlapping)],
             ["portfolio", "--data", str(bad)],
             ["portfolio", "--tickers", "AAPL", "NOPE"],
             ["portfolio", "--max-weight", "0.01", "--model", "lightgbm"],
             ["portfolio", "--test-start", "2030-01-01", "--test-end", "2031-01-01"],
             ["factors", "--tickers", "NOPE"],
             ["factors", "--train-start", "2017-06-01"],
             ["trading", "--tickers", "NOPE"],
             ["trading", "--train-start", "2017-06-01"],
             ["factors", "--cache-dir", str(bad / "cache")],
             ["portfolio", "--jobs", "0"],
             ["portfolio", "--seed", "-2"],
             ["portfolio", "--seeds", "1", "-1"],
             ["factors", "--seeds", "-1"],
             ["trading", "--seeds", "4294967296"],
             ["trading", "--seed", "-3"]]
    code = ("import sys, io, contextlib, json\n"
            "from storm_bt.backtest.cli import main\n"
            "codes = []\n"
            f"for k, argv in enumerate({cases!r}):\n"
            "    err = io.StringIO()\n"
            "    with contextlib.redirect_stderr(err):\n"
            f"        code = main(argv + ['--out', {str(tmp_path)!r} + f'/out{{k}}',"
            " '--log-level', 'WARNING'])\n"
            "    codes.append([code, err.getvalue()])\n"
            "heavy = [m for m in ('torch', 'cvxpy', 'backtrader', 'sklearn', 'scipy', 'skfolio',"
            " 'matplotlib', 'quantstats', 'lightgbm', 'gymnasium') if m in sys.modules]\n"
            "print(json.dumps([codes, heavy]))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    codes, heavy = json.loads(result.stdout.strip().splitlines()[-1])
    for argv, (code, err) in zip(cases, codes):
        assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, (argv, err)
    assert codes[-1][1].startswith("error: --seed -3:"), "the refusal names the flag given"
    assert heavy == [], f"input checks imported {heavy}"


@pytest.mark.slow
def test_portfolio_seeds_in_parallel_write_what_a_serial_run_writes(tmp_path):
    serial, parallel = tmp_path / "serial", tmp_path / "parallel"
    argv = ["portfolio", *SHORT, "--seeds", "1", "2"]
    assert main([*argv, "--out", str(serial)]) == 0
    assert main([*argv, "--jobs", "2", "--out", str(parallel)]) == 0
    names = ["seeds.csv", "seeds.md"] + [f"seed-{s}/{f}" for s in (1, 2) for f in
                                         ("metrics.json", "predictions.csv", "weights.csv",
                                          "equity.csv")]
    for name in names:
        assert (serial / name).read_bytes() == (parallel / name).read_bytes(), name
    seeds = pd.read_csv(serial / "seeds.csv")
    assert seeds["seed"].tolist() == [1, 2]
    one = json.loads((serial / "seed-2" / "metrics.json").read_text())
    assert seeds.loc[1, "sharpe"] == pytest.approx(one["portfolio"]["sharpe"])
