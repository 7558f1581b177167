"""optimizers: from predicted returns to target portfolio weights (no backtrader, no models).

- `optimizers.covariance`: Ledoit-Wolf risk models, full or exact factor form.
- `optimizers.mean_variance`: the cvxpy mean-variance problem with a turnover penalty.
- `optimizers.topk`: top-k with dropout (the STORM paper's portfolio, D9 fixed).
- `optimizers.rebalance`: the loop over rebalance dates, scores to expected returns.
"""
from optimizers.covariance import RiskModel, ledoit_wolf_covariance, risk_model
from optimizers.mean_variance import MeanVarianceOptimizer
from optimizers.rebalance import Optimizer, expected_returns, make_optimizer, rebalance_weights
from optimizers.topk import TopkDropout

__all__ = ["MeanVarianceOptimizer", "Optimizer", "RiskModel", "TopkDropout", "expected_returns",
           "ledoit_wolf_covariance", "make_optimizer", "rebalance_weights", "risk_model"]
