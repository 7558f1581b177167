"""Factor evaluation, independent of any backtest engine.

- `storm_bt.evaluation.ic`: daily IC / RankIC, ICIR / RankICIR, quantile returns.
- `storm_bt.evaluation.factor_selection`: STORM codebook usage, clusters and their selection.
"""
from storm_bt.evaluation.ic import daily_ic, daily_rank_ic, ic_summary, quantile_returns

__all__ = ["daily_ic", "daily_rank_ic", "ic_summary", "quantile_returns"]
