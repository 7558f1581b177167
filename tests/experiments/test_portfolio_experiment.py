"""The portfolio experiment as a library call: a config in, a result out, no argparse."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from storm_bt.errors import StormBtError
from storm_bt.experiments import DataConfig, ModelSettings, PortfolioConfig, run_portfolio
from storm_bt.experiments.record import config_dict

TICKERS = ("AAPL", "AMD", "BAC", "JNJ", "JPM", "KO", "MSFT", "PG", "XOM", "WMT")
DATA = DataConfig(tickers=TICKERS, train_start="2013-01-01", valid_start="2017-01-01",
                  test_start="2018-01-01", test_end="2018-09-28")


@pytest.fixture(scope="module")
def result():
    config = PortfolioConfig(data=DATA, model="lightgbm", model_settings=ModelSettings(threads=1),
                             seed=3)
    return run_portfolio(config)


def test_a_notebook_runs_a_portfolio_without_argparse(result):
    assert result.model_name == "lightgbm"
    assert list(result.predictions.columns) == list(TICKERS)
    assert result.predictions.index.min() >= np.datetime64("2018-01-01")
    # The result's numbers are those of its own equity curve.
    values = result.equity.to_numpy()
    assert result.metrics["portfolio"]["cumulative_wealth"] == pytest.approx(values[-1] / values[0])
    # Ten tickers: the default cap is raised to 2/10 so that the optimiser has room to choose.
    assert result.max_weight == pytest.approx(0.2)
    assert result.weights.max().max() <= 0.2 + 1e-6
    np.testing.assert_allclose(result.weights.fillna(0).sum(axis=1), 1.0, atol=1e-6)


def test_a_config_round_trips_through_its_record(result):
    config = result.config
    assert PortfolioConfig.from_dict(config_dict(config)) == config


@pytest.mark.parametrize("change, needle", [
    (dict(n_drop=9, optimizer="topk"), "--n-drop 9"),
    (dict(risk_aversion=float("nan")), "--risk-aversion"),
    (dict(gross_limit=0.0), "--gross-limit 0.0"),
    (dict(model="alphago"), "alphago"),
    (dict(max_weight=1.5), "--max-weight 1.5"),
    (dict(lookback=5), "--lookback 5"),
    (dict(cash=-1.0), "--cash -1.0"),
])
def test_a_config_refuses_values_that_cannot_work(change, needle):
    with pytest.raises(StormBtError, match=needle.replace("+", r"\+")):
        dataclasses.replace(PortfolioConfig(data=DATA, model="lightgbm"), **change)


def test_an_explicit_cap_that_cannot_fill_the_book_is_an_error():
    config = PortfolioConfig(data=DATA, model="lightgbm", max_weight=0.05)
    with pytest.raises(StormBtError, match=r"--max-weight 0.05 x 10 tickers < 1"):
        config.check_universe(10)


def test_the_default_cap_adapts_to_the_universe():
    config = PortfolioConfig()
    assert config.weight_cap(30) == 0.1 and config.weight_cap(20) == 0.1
    assert config.weight_cap(8) == pytest.approx(0.25)
    assert config.weight_cap(2) == 1.0


def test_an_ensemble_trades_the_average_of_its_seeds_z_scores(result):
    """--ensemble 3 4: one book on each day's z-scored predictions averaged over two fits,
    each of which is the fit a single-seed run makes (the first is the fixture's seed 3)."""
    from storm_bt.experiments.ensemble import seed_ensemble

    config = dataclasses.replace(result.config, ensemble=(3, 4))
    ensemble = run_portfolio(config)
    other = run_portfolio(dataclasses.replace(result.config, seed=4))
    expected = seed_ensemble([result.predictions, other.predictions])
    np.testing.assert_allclose(ensemble.predictions.to_numpy(), expected.to_numpy(),
                               rtol=1e-12, atol=1e-12)
    assert ensemble.model_name == "lightgbm ensemble (3 4)"
    assert ensemble.model_config["ensemble_seeds"] == [3, 4]
    assert PortfolioConfig.from_dict(config_dict(config)) == config
    np.testing.assert_allclose(ensemble.weights.fillna(0).sum(axis=1), 1.0, atol=1e-6)
    with pytest.raises(StormBtError, match="--ensemble 3: an ensemble needs at least two"):
        dataclasses.replace(result.config, ensemble=(3,))
