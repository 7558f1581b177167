"""The trading table experiment: a config in (every flag checked before data is read), a result
out; the universe and traded stocks; a tiny table end to end on real data; the command
line's files, rerun from config.json; and the table maths (Improvement(%), mean ± std)."""
from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from dataclasses import replace

import pandas as pd
import pytest
import torch

from storm_bt.errors import StormBtError
from storm_bt.experiments.data import DataConfig
from storm_bt.experiments.record import config_dict
from storm_bt.experiments.trading_table import (TradingTableConfig, load_trading_data,
                                                run_trading_table)
from storm_bt.models.registry import ModelSettings
from storm_bt.trading.rows import TABLE_MODELS
from reports.tables import IMPROVEMENT, TRADING_METRICS

torch.set_num_threads(1)


# ------------------------------------------------------------------ config
@pytest.mark.parametrize("kwargs, needle", [
    ({"models": ("storm", "alphago")}, "--models: unknown model 'alphago'"),
    ({"models": ()}, "--models: give at least one model"),
    ({"seeds": ()}, "--seeds"),
    ({"seeds": (-1,)}, "--seeds -1"),
    ({"universe": ()}, "--universe: give at least one ticker"),
    ({"timesteps": 0}, "--timesteps 0"),
    ({"cash": 0.0}, "--cash 0.0"),
    ({"cash": float("inf")}, "--cash inf"),
    ({"cost_bps": -1.0}, "--cost-bps -1.0"),
    ({"cost_bps": float("nan")}, "--cost-bps nan"),
    ({"threshold": -0.1}, "--threshold -0.1"),
    ({"threshold": float("nan")}, "--threshold nan"),
    ({"agent_threads": 0}, "agent_threads 0"),
    ({"fill": "sideways"}, "--fill 'sideways': choose one of close, next-open"),
])
def test_every_setting_is_checked_when_the_config_is_built(kwargs, needle):
    with pytest.raises(StormBtError, match=needle.replace("(", r"\(")):
        TradingTableConfig(data=DataConfig(data="/no/such/file.csv"), **kwargs)


def test_config_defaults_resolve_and_round_trip_through_its_record():
    config = TradingTableConfig(models=("storm", "buy-and-hold", "storm"), seeds=(3, 1, 3),
                                model_settings=ModelSettings(preset="tiny"), cost_bps=5.0)
    assert config.models == ("storm", "buy-and-hold") and config.seeds == (3, 1)
    assert config.cost == 5e-4 and config.resolved_threshold() == 5e-4
    assert config.agent_timesteps() == {"dqn": 2_000, "sac": 500, "ppo": 2_048}
    assert replace(config, timesteps=64).agent_timesteps() == {"dqn": 64, "sac": 64, "ppo": 64}
    recorded = json.loads(json.dumps(config_dict(config)))
    assert TradingTableConfig.from_dict(recorded) == config
    with pytest.raises(StormBtError, match="not a TradingTableConfig as recorded"):
        TradingTableConfig.from_dict({**recorded, "optimizer": "topk"})


# ------------------------------------------------------------------ data
def test_the_traded_stocks_join_the_universe_in_the_datas_order():
    config = TradingTableConfig(data=DataConfig(tickers=("MSFT", "AAPL")),
                                universe=("XOM", "KO", "JPM"))
    panel, split, traded = load_trading_data(config)
    assert traded == ("MSFT", "AAPL")
    assert panel.tickers == ("AAPL", "JPM", "KO", "MSFT", "XOM")
    assert panel.dates[-1] == split.test_end


def test_the_paper_tickers_in_the_data_are_traded_by_default():
    panel, _, traded = load_trading_data(TradingTableConfig())
    assert traded == ("AAPL", "JPM", "MSFT")  # IBM and INTC are not in the embedded sample
    assert len(panel.tickers) == 20


def _tiny_csv(tmp_path, tickers):
    days = pd.bdate_range("2010-01-04", "2014-12-31")
    rows = [(d.date(), t, 10.0 + i, 10.0 + i) for i, d in enumerate(days) for t in tickers]
    path = tmp_path / "prices.csv"
    pd.DataFrame(rows, columns=["date", "ticker", "close", "adj_close"]).to_csv(path, index=False)
    return str(path)


@pytest.mark.parametrize("tickers, universe, needle", [
    (None, None, "none of the paper's tickers"),
    (("AAA", "NOPE"), None, "unknown ticker\\(s\\) NOPE"),
    (("AAA",), ("ZZZ",), "unknown ticker\\(s\\) ZZZ"),
    (("AAA",), ("AAA",), "at least 2 tickers in the universe, got 1"),
])
def test_bad_traded_or_universe_tickers_name_the_problem(tmp_path, tickers, universe, needle):
    data = DataConfig(data=_tiny_csv(tmp_path, ["AAA", "BBB"]), tickers=tickers)
    with pytest.raises(StormBtError, match=needle):
        load_trading_data(TradingTableConfig(data=data, universe=universe))


# ------------------------------------------------------------------ end to end
TICKERS = ("AAPL", "JPM")
SPLIT = dict(train_start="2016-01-04", valid_start="2019-01-02", test_start="2020-01-02",
             test_end="2020-12-31")
TINY_SETTINGS = ModelSettings(preset="tiny", epochs=1, threads=1)


@pytest.mark.slow
def test_tiny_table_end_to_end_on_real_data(shared_data_dir, dj30_panel, tmp_path):
    data = DataConfig(data=str(shared_data_dir / "dj30_daily.csv.gz"), tickers=TICKERS, **SPLIT)
    config = TradingTableConfig(data=data, universe=("AAPL", "JPM", "IBM", "MSFT"),
                                model_settings=replace(TINY_SETTINGS,
                                                       cache_dir=str(tmp_path / "cache")),
                                timesteps=256)
    result = run_trading_table(config)
    table = result.table
    assert list(table.columns) == ["model", "ticker", "seed", *TRADING_METRICS]
    assert list(zip(table["model"], table["ticker"])) == \
        [(m, t) for m in TABLE_MODELS for t in TICKERS]  # the table's order
    assert result.panel.tickers == ("AAPL", "IBM", "JPM", "MSFT")  # the data's order
    assert set(result.fit_seconds) == {f"{m}/1337" for m in TABLE_MODELS
                                       if m not in ("buy-and-hold", "dqn", "sac", "ppo")}
    test_days = dj30_panel.dates[(dj30_panel.dates >= "2020-01-02") &
                                 (dj30_panel.dates <= "2020-12-31")]
    equity = result.equity()
    for (model, ticker), curve in equity.groupby(["model", "ticker"]):
        assert pd.DatetimeIndex(curve["date"]).equals(test_days), (model, ticker)
        row = table[(table["model"] == model) & (table["ticker"] == ticker)].iloc[0]
        assert row["CW"] == pytest.approx(curve["value"].iloc[-1] / 1e5, rel=1e-12)
    # buy-and-hold against the account rules by hand on the raw adjusted closes
    adj = dj30_panel.field("adj_close").loc[test_days]
    for ticker in TICKERS:
        p0, pn = adj[ticker].iloc[0], adj[ticker].iloc[-1]
        n = math.floor(1e5 / (p0 * (1 + 1e-4)))
        final = 1e5 - n * p0 - n * p0 * 1e-4 + n * pn
        row = table[(table["model"] == "buy-and-hold") & (table["ticker"] == ticker)].iloc[0]
        assert row["CW"] == pytest.approx(final / 1e5, rel=1e-12)
        assert row["APY"] == pytest.approx((final / 1e5) ** (252 / len(test_days)) - 1, rel=1e-9)
    # the agents trained on their stock's train + valid days, on a state of the right width
    agent = next(r for r in result.runs if r.model == "storm" and r.ticker == "JPM")
    rl_days = dj30_panel.dates[(dj30_panel.dates >= "2016-01-04") &
                               (dj30_panel.dates < "2020-01-02")]
    assert 0.9 * len(rl_days) < agent.extra["train_days"] <= len(rl_days)


def _cli(*argv: str) -> subprocess.CompletedProcess:
    """`python -m storm_bt.backtest trading ...` in a subprocess (real stderr and exit status)."""
    argv = (*argv, "--log-level", "WARNING")  # progress logs also go to stderr
    return subprocess.run([sys.executable, "-m", "storm_bt.backtest", "trading", *argv],
                          capture_output=True, text=True, timeout=600)


TINY_FLAGS = ["--tickers", *TICKERS, "--universe", "AAPL", "JPM", "IBM", "MSFT",
              "--train-start", SPLIT["train_start"], "--valid-start", SPLIT["valid_start"],
              "--test-start", SPLIT["test_start"], "--test-end", SPLIT["test_end"],
              "--preset", "tiny", "--epochs", "1", "--timesteps", "256", "--threads", "1"]


@pytest.mark.slow
def test_cli_files_tearsheets_and_a_rerun_from_config_json(shared_data_dir, tmp_path):
    from storm_bt.backtest.cli import main

    out = tmp_path / "run"
    result = _cli("--data", str(shared_data_dir / "dj30_daily.csv.gz"), *TINY_FLAGS,
                  "--models", "buy-and-hold", "lightgbm", "--out", str(out))
    assert result.returncode == 0, result.stderr[-2000:]
    names = {p.name for p in out.iterdir()}
    assert {"trading.csv", "trading.md", "equity.csv", "config.json"} <= names
    assert {f"tearsheet_{t}_{m}.html" for t in TICKERS for m in ("buy-and-hold", "lightgbm")} \
        <= names
    assert "Sharpe" in (out / "tearsheet_AAPL_lightgbm.html").read_text()
    markdown = (out / "trading.md").read_text()
    assert "AAPL APY" in markdown and "JPM AVO" in markdown and IMPROVEMENT in markdown
    assert "LightGBM" in markdown and "Buy&Hold" in markdown and "cost 1 bp" in markdown
    record = json.loads((out / "config.json").read_text())
    assert record["traded"] == list(TICKERS)
    assert record["data"]["tickers"] == ["AAPL", "IBM", "JPM", "MSFT"]  # the data's order
    assert record["resolved"] == {"threshold": 1e-4, "cost": 1e-4,
                                  "timesteps": {"dqn": 256, "sac": 256, "ppo": 256}}
    assert record["config"]["models"] == ["buy-and-hold", "lightgbm"]
    again = tmp_path / "again"
    assert main(["trading", "--config", str(out / "config.json"), "--no-tearsheets",
                 "--out", str(again), "--log-level", "WARNING"]) == 0
    for name in ("trading.csv", "equity.csv", "trading.md"):
        assert (again / name).read_bytes() == (out / name).read_bytes(), name


@pytest.mark.parametrize("argv, needle", [
    (["--tickers", "AAPL", "NOPE"], "NOPE"),
    (["--models", "storm", "alphago"], "--models: unknown model 'alphago'"),
    (["--cost-bps", "-1"], "--cost-bps -1"),
    (["--tickers", "AAPL", "JPM", "--cash", "1", "--test-start", "2020-01-02"],
     "--cash 1 buys no share of AAPL"),
    (["--seeds", "-3"], "--seeds -3"),
    (["--tickers", "DOW", "--valid-start", "2018-01-02", "--test-start", "2019-01-02"],
     "DOW has no row on the first test day 2019-01-02"),  # listed 2019-03-20
])
def test_bad_input_is_one_line_exit_2(shared_data_dir, tmp_path, argv, needle):
    out = tmp_path / "out"
    result = _cli("--data", str(shared_data_dir / "dj30_daily.csv.gz"), *argv,
                  "--out", str(out))
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: "), result.stderr
    assert needle in result.stderr and "Traceback" not in result.stderr
    assert not out.exists() or not any(out.iterdir())


def test_a_ticker_whose_rows_end_inside_the_test_period_is_refused(shared_data_dir, tmp_path):
    """A stock that stops trading inside the test period was scored to the end with its
    value frozen, while one that starts late was refused: both ends are checked now."""
    raw = pd.read_csv(shared_data_dir / "dj30_daily.csv.gz")
    raw = raw[raw.ticker.isin(["AAPL", "JPM", "KO"]) & (raw.date >= "2015-01-01")
              & (raw.date <= SPLIT["test_end"])]
    raw = raw[(raw.ticker != "KO") | (raw.date <= "2020-09-01")]
    raw.to_csv(tmp_path / "ragged.csv", index=False)
    out = tmp_path / "out"
    result = _cli("--data", str(tmp_path / "ragged.csv"), "--tickers", "KO", "AAPL",
                  *[f"--{k.replace('_', '-')}={v}" for k, v in SPLIT.items()],
                  "--models", "buy-and-hold", "--out", str(out))
    assert result.returncode == 2, result.stderr[-2000:]
    assert "KO's rows end on 2020-09-01, inside the test period (to 2020-12-31)" in result.stderr
    assert result.stderr.count("\n") == 1 and not out.exists()


def test_a_bad_flag_fails_before_the_data_is_read(tmp_path):
    result = _cli("--data", str(tmp_path / "missing.csv"), "--threshold", "-1",
                  "--out", str(tmp_path / "out"))
    assert result.returncode == 2 and "--threshold -1" in result.stderr, result.stderr


# ------------------------------------------------------------------ fills and the grid
def test_next_open_buy_and_hold_fills_at_the_second_days_open(shared_data_dir, dj30_panel):
    """Buy-and-hold decides at the first test close and, with fill="next-open", buys at the
    second test day's total-return open: checked on the panel's own open prices."""
    data = DataConfig(data=str(shared_data_dir / "dj30_daily.csv.gz"), tickers=TICKERS, **SPLIT)
    config = TradingTableConfig(data=data, universe=("AAPL", "JPM", "IBM", "MSFT"),
                                models=("buy-and-hold",), fill="next-open")
    result = run_trading_table(config)
    days = dj30_panel.dates[(dj30_panel.dates >= "2020-01-02") & (dj30_panel.dates <= "2020-12-31")]
    for ticker in TICKERS:
        raw = dj30_panel.select([ticker])
        o = float((raw.field("open") * raw.field("adj_close") / raw.field("close"))
                  .loc[days[1], ticker])
        last = float(raw.field("adj_close").loc[days[-1], ticker])
        n = math.floor(1e5 / (o * (1 + 1e-4)))
        final = 1e5 - n * o - n * o * 1e-4 + n * last
        run = next(r for r in result.runs if r.ticker == ticker)
        assert list(run.result.trades["date"]) == [days[1]]
        assert run.result.trades["price"].iloc[0] == pytest.approx(o, rel=1e-12)
        assert run.metrics["CW"] == pytest.approx(final / 1e5, rel=1e-12)
        assert run.result.values[1] == 1e5  # the first day cannot trade


@pytest.mark.slow
def test_a_parallel_table_writes_the_serial_runs_files(shared_data_dir, tmp_path):
    """--jobs 2, and the Ray backend where the extra is installed (a local ray.init with 2
    CPUs), run the fits and rows on two processes and write the same bytes as --jobs 1
    (buy-and-hold, a fitted predictor and a trained agent, each on two stocks)."""
    grids = {"jobs1": ["--jobs", "1"], "jobs2": ["--jobs", "2"]}
    if importlib.util.find_spec("ray") is not None:   # CI installs the extra
        grids["ray"] = ["--backend", "ray", "--jobs", "2"]
    outs = {}
    for name, grid in grids.items():
        out = tmp_path / name
        result = _cli("--data", str(shared_data_dir / "dj30_daily.csv.gz"), *TINY_FLAGS,
                      "--models", "buy-and-hold", "lightgbm", "dqn", "--timesteps", "128",
                      "--no-tearsheets", *grid, "--out", str(out))
        assert result.returncode == 0, f"{name}: {result.stderr[-2000:]}"
        outs[name] = out
    for grid in outs:
        for name in ("trading.csv", "equity.csv", "trading.md"):
            assert (outs["jobs1"] / name).read_bytes() == (outs[grid] / name).read_bytes(), \
                (grid, name)
    table = pd.read_csv(outs["jobs1"] / "trading.csv")
    assert list(zip(table["model"], table["ticker"])) == \
        [(m, t) for m in ("buy-and-hold", "lightgbm", "dqn") for t in TICKERS]
