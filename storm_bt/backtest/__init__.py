"""The command line: ``python -m storm_bt.backtest {portfolio,factors,trading} --help``."""
