"""storm_bt: a backtrader plugin with the STORM spatio-temporal factor model.

Pipeline (data flows one way)::

    data -> features/labels -> model (fit/predict) -> signal (date x ticker)
         -> optimizer (signal -> target weights) | trading policy (signal -> buy/hold/sell)
         -> backtrader strategy (weights/actions -> orders) -> report (returns -> tear sheet)
"""
from storm_bt.errors import StormBtError

__version__ = "0.1.0"
__all__ = ["StormBtError", "__version__"]
