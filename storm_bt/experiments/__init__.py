"""Experiments as functions of a frozen config: the library API behind every command.

    run_portfolio(PortfolioConfig) -> PortfolioResult          (storm_bt.experiments.portfolio)
    run_factors(FactorsConfig) -> FactorsResult                (storm_bt.experiments.factors)
    run_trading_table(TradingTableConfig) -> TradingTableResult (storm_bt.experiments.trading_table)

A config validates every setting when it is built, before any data is read; a run returns
plain frames and dicts and writes no file (the command line, `storm_bt.backtest`, writes
them). Shared steps: `data` (DataConfig -> panel and split), `fitting` (seed, build, fit and
time one model), `walkforward` (refits through the test period), `grid` (independent tasks
on processes or Ray), `record` (config.json: config, data fingerprint, versions).

Importing this package is cheap: torch, backtrader and the RL stack load only when a run starts.
"""
from storm_bt.experiments.data import DataConfig, load_experiment_data
from storm_bt.experiments.factors import FactorsConfig, FactorsResult, run_factors
from storm_bt.experiments.grid import GridSettings
from storm_bt.experiments.portfolio import PortfolioConfig, PortfolioResult, run_portfolio
from storm_bt.experiments.trading_table import (TradingTableConfig, TradingTableResult,
                                                run_trading_table)
from storm_bt.models.registry import ModelSettings

__all__ = ["DataConfig", "FactorsConfig", "FactorsResult", "GridSettings", "ModelSettings",
           "PortfolioConfig", "PortfolioResult", "TradingTableConfig", "TradingTableResult",
           "load_experiment_data", "run_factors", "run_portfolio", "run_trading_table"]
