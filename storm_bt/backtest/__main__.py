"""Entry point of ``python -m storm_bt.backtest``."""
import sys

from storm_bt.backtest.cli import main

sys.exit(main())
