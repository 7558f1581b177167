"""The trading table: Improvement(%) and the seed summary by hand, the STORM state pooling and
standardisation, agents' seeding, a tiny end-to-end run on real data, and bad input."""
from __future__ import annotations

import json
import math
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from storm_bt.trading.states import factor_state_from_output, pool_tokens, standardise
from storm_bt.trading.table import (ALL_MODELS, IMPROVEMENT, METRICS, improvement,
                                    summary_tables)

torch.set_num_threads(1)


# ------------------------------------------------------------------ pure pieces
def test_improvement_is_relative_to_the_best_baseline_in_the_right_direction():
    cols = pd.MultiIndex.from_tuples([("AAPL", "APY"), ("AAPL", "MDD"), ("AAPL", "ASR")])
    means = pd.DataFrame([[0.10, 0.30, 0.5],    # buy-and-hold
                          [0.20, 0.25, -0.4],   # lstm
                          [0.90, 0.01, 9.0],    # storm-ts: an ablation, never "the baseline"
                          [0.25, 0.20, -0.2]],  # storm
                         index=["buy-and-hold", "lstm", "storm-ts", "storm"], columns=cols)
    imp = improvement(means)
    assert imp[("AAPL", "APY")] == pytest.approx(100 * (0.25 - 0.20) / 0.20)
    assert imp[("AAPL", "MDD")] == pytest.approx(100 * (0.25 - 0.20) / 0.25)  # lower is better
    assert imp[("AAPL", "ASR")] == pytest.approx(100 * (-0.2 - 0.5) / 0.5)
    assert improvement(means.drop(index="storm")).isna().all()
    # a baseline that never held the stock (MDD 0) is no "best" for the risk metrics
    cash = pd.DataFrame([[0.0, 0.0, np.nan]], index=["sac"], columns=cols)
    imp = improvement(pd.concat([means, cash]))
    assert imp[("AAPL", "MDD")] == pytest.approx(100 * (0.25 - 0.20) / 0.25)
    assert imp[("AAPL", "APY")] == pytest.approx(100 * (0.25 - 0.20) / 0.20)


def _long(rows):
    return pd.DataFrame(rows, columns=["model", "ticker", "seed", *METRICS])


def test_summary_cells_are_mean_and_std_over_seeds():
    rows = [("buy-and-hold", "AAPL", s, 0.1, 1.3, 0.5, 0.8, 0.2, 0.25) for s in (1, 2)]
    rows += [("storm", "AAPL", 1, 0.12, 1.4, 0.6, 1.0, 0.10, 0.20),
             ("storm", "AAPL", 2, 0.18, 1.6, 1.0, 1.2, 0.30, 0.30)]
    first, second, means = summary_tables(_long(rows))
    assert first.loc["STORM", ("AAPL", "APY")] == \
        f"{15.0:.2f} ± {np.std([12.0, 18.0], ddof=1):.2f}%"
    assert means.loc["storm", ("AAPL", "CW")] == pytest.approx(1.5)
    # STORM's APY mean 0.15 vs buy-and-hold's 0.10: +50 %; its MDD 0.20 equals the best: 0
    assert first.loc[IMPROVEMENT, ("AAPL", "APY")] == "+50.00"
    assert second.loc[IMPROVEMENT, ("AAPL", "MDD")] == "+0.00"
    assert list(first.index) == ["Buy&Hold", "STORM", IMPROVEMENT]


def test_ts_tokens_of_the_chosen_stock_are_pooled():
    n, blocks, stocks, d = 3, 4, 5, 2
    rng = np.random.default_rng(0)
    out = {"z_ts": rng.normal(size=(n, blocks * stocks, d)).astype(np.float32),
           "q_ts": rng.normal(size=(n, blocks * stocks, d)).astype(np.float32),
           "z_cs": rng.normal(size=(n, 6, d)).astype(np.float32),
           "q_cs": rng.normal(size=(n, 6, d)).astype(np.float32)}
    (state,) = factor_state_from_output(out, [3], stocks)
    # stock 3's tokens sit at j * S + 3 (time-major), phi = [z || q]
    own = np.concatenate([out["z_ts"][:, 3::stocks], out["q_ts"][:, 3::stocks]], axis=-1)
    cs = np.concatenate([out["z_cs"], out["q_cs"]], axis=-1)
    want = np.concatenate([cs.mean(1), cs[:, -1], own.mean(1), own[:, -1]], axis=1)
    np.testing.assert_allclose(state, want, rtol=1e-6)
    assert state.shape == (n, 4 * 2 * d)
    np.testing.assert_allclose(pool_tokens(own)[:, 2 * d:], own[:, blocks - 1])


def test_standardise_uses_the_fit_range_only():
    days = pd.bdate_range("2020-01-01", periods=10)
    frame = pd.DataFrame({"a": np.arange(10.0), "b": 3.0}, index=days)
    z = standardise(frame, days[0], days[4])
    fit = np.arange(5.0)
    np.testing.assert_allclose(z["a"], np.clip((np.arange(10.0) - fit.mean()) / fit.std(), -5, 5))
    assert (z["b"] == 0).all()  # a constant column carries nothing
    later = frame.copy()
    later.iloc[5:] = 1e6  # the future changes no standardised past
    pd.testing.assert_frame_equal(standardise(later, days[0], days[4]).iloc[:5], z.iloc[:5])


def test_same_seed_same_agent_and_another_seed_differs():
    from storm_bt.trading.agents import AgentConfig, train_agent

    rng = np.random.default_rng(2)
    states = rng.normal(size=(300, 6)).astype(np.float32)
    prices = 50 * np.exp(np.cumsum(rng.normal(0, 0.02, 300)))
    for algo in ("ppo", "dqn", "sac"):
        cfg = AgentConfig(algo=algo, timesteps=600, seed=5, n_steps=64, learning_starts=100,
                          net_arch=(16,))
        a, b = train_agent(states, prices, cfg), train_agent(states, prices, cfg)
        acts_a = [a.act(s, 0) for s in states]
        assert acts_a == [b.act(s, 0) for s in states], algo
        pa = np.concatenate([p.detach().numpy().ravel() for p in a.model.policy.parameters()])
        pb = np.concatenate([p.detach().numpy().ravel() for p in b.model.policy.parameters()])
        np.testing.assert_array_equal(pa, pb)
        c = train_agent(states, prices, replace(cfg, seed=6))
        pc = np.concatenate([p.detach().numpy().ravel() for p in c.model.policy.parameters()])
        assert not np.array_equal(pa, pc), algo


# ------------------------------------------------------------------ end to end
TICKERS = ["AAPL", "JPM"]
TINY = ["--tickers", *TICKERS, "--universe", "AAPL", "JPM", "IBM", "MSFT",
        "--train-start", "2016-01-04", "--valid-start", "2019-01-02",
        "--test-start", "2020-01-02", "--test-end", "2020-12-31",
        "--preset", "tiny", "--epochs", "1", "--timesteps", "256", "--threads", "1",
        "--log-level", "WARNING"]


def _cli(*argv: str) -> subprocess.CompletedProcess:
    """`python -m storm_bt.backtest trading ...` in a subprocess (real stderr and exit status)."""
    argv = (*argv, "--log-level", "WARNING")  # progress logs also go to stderr
    return subprocess.run([sys.executable, "-m", "storm_bt.backtest", "trading", *argv],
                          capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_tiny_table_end_to_end_on_real_data(shared_data_dir, dj30_panel, tmp_path):
    from storm_bt.backtest.cli import main

    out = tmp_path / "run"
    code = main(["trading", "--data", str(shared_data_dir / "dj30_daily.csv.gz"), *TINY,
                 "--no-tearsheets", "--cache-dir", str(tmp_path / "cache"), "--out", str(out)])
    assert code == 0
    table = pd.read_csv(out / "trading.csv")
    assert list(table.columns) == ["model", "ticker", "seed", *METRICS]
    assert sorted(zip(table["model"], table["ticker"])) == \
        sorted((m, t) for m in ALL_MODELS for t in TICKERS)
    equity = pd.read_csv(out / "equity.csv", parse_dates=["date"])
    test_days = dj30_panel.dates[(dj30_panel.dates >= "2020-01-02") &
                                 (dj30_panel.dates <= "2020-12-31")]
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
    markdown = (out / "trading.md").read_text()
    assert "AAPL APY" in markdown and "JPM AVO" in markdown and IMPROVEMENT in markdown
    assert "STORM-w/o-CS" in markdown and "Buy&Hold" in markdown
    config = json.loads((out / "config.json").read_text())
    assert config["traded"] == TICKERS
    assert config["data"]["tickers"] == ["AAPL", "IBM", "JPM", "MSFT"]  # the data's order
    assert config["table"]["timesteps"] == {"dqn": 256, "sac": 256, "ppo": 256}


@pytest.mark.slow
def test_tearsheets_per_ticker_and_model(shared_data_dir, tmp_path):
    out = tmp_path / "run"
    result = _cli("--data", str(shared_data_dir / "dj30_daily.csv.gz"), *TINY,
                  "--models", "buy-and-hold", "lightgbm", "--out", str(out))
    assert result.returncode == 0, result.stderr[-2000:]
    names = {p.name for p in out.iterdir()}
    assert {f"tearsheet_{t}_{m}.html" for t in TICKERS for m in ("buy-and-hold", "lightgbm")} \
        <= names
    assert "Sharpe" in (out / "tearsheet_AAPL_lightgbm.html").read_text()


@pytest.mark.parametrize("argv, needle", [
    (["--tickers", "AAPL", "NOPE"], "NOPE"),
    (["--models", "storm", "alphago"], "--models: unknown model 'alphago'"),
    (["--cost-bps", "-1"], "--cost-bps -1"),
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


@pytest.mark.slow
def test_storm_states_ignore_data_after_their_date(dj30_panel, tmp_path):
    """The factor state of day t is the same whatever happens after t."""
    from storm_bt.data.panel import Panel
    from storm_bt.dataset import build_feature_set, make_split
    from storm_bt.models import make_predictor
    from storm_bt.trading.states import storm_states

    panel = dj30_panel.select(["AAPL", "IBM", "JPM", "MSFT"]).since("2016-01-04")
    panel = panel.until("2020-12-31")
    split = make_split(panel.dates, "2017-01-03", "2019-01-02", "2020-01-02", min_train_days=200)
    data = build_feature_set(panel)
    storm = make_predictor("storm", preset="tiny", epochs=1, seed=1, num_threads=1,
                           cache_dir=None).fit(data, split)
    cut = pd.Timestamp("2020-06-30")
    values = panel.values.copy()
    values[panel.dates > cut] *= np.linspace(0.5, 2.0, len(panel.tickers))[None, :, None]
    future = Panel(panel.dates, panel.tickers, panel.fields, values, panel.mask, panel.source)
    # chunks of 50 days: the states are cut into pieces across the cut date too
    a = storm_states(storm, data, ["JPM", "AAPL"], "2019-06-03", "2020-12-31", chunk=50)
    b = storm_states(storm, build_feature_set(future), ["JPM", "AAPL"], "2019-06-03",
                     "2020-12-31", chunk=50)
    whole = storm_states(storm, data, ["JPM", "AAPL"], "2019-06-03", "2020-12-31", chunk=1000)
    for ticker in ("JPM", "AAPL"):
        pd.testing.assert_frame_equal(a[ticker].loc[:cut], b[ticker].loc[:cut])
        assert not np.allclose(a[ticker].loc[cut:].iloc[1:], b[ticker].loc[cut:].iloc[1:])
        np.testing.assert_allclose(a[ticker], whole[ticker], rtol=1e-5, atol=1e-6)
        assert a[ticker].index[0] == pd.Timestamp("2019-06-03")
    assert not np.allclose(a["JPM"], a["AAPL"])  # each stock has its own TS tokens
