"""Factor evaluation, independent of any backtest engine.

- `storm_bt.evaluation.ic`: daily IC / RankIC, ICIR / RankICIR, quantile returns, the
  scores of one prediction frame, cross-sectional z-scores.
- `storm_bt.evaluation.factor_selection`: STORM codebook usage, clusters and their selection.
"""
from storm_bt.evaluation.ic import (daily_ic, daily_rank_ic, ic_summary, quantile_returns,
                                    score_predictions, zscore_rows)

__all__ = ["daily_ic", "daily_rank_ic", "ic_summary", "quantile_returns", "score_predictions",
           "zscore_rows"]
