"""optimizers: from predicted returns to target portfolio weights (no backtrader, no models).

- `optimizers.covariance`: Ledoit-Wolf risk models, exact or with K statistical factors.
- `optimizers.factor_qp`: the mean-variance problem solved exactly by Newton on its dual.
- `optimizers.mean_variance`: the mean-variance optimiser (dual Newton; cvxpy the reference).
- `optimizers.topk`: top-k with dropout (the STORM paper's portfolio, D9 fixed).
- `optimizers.rebalance`: the loop over rebalance dates, scores to expected returns over the
  holding horizon.
- `optimizers.book`: how much a run's book changes (a frozen-book check).
"""
from optimizers.book import book_change_summary
from optimizers.covariance import RiskModel, ledoit_wolf_covariance, risk_model
from optimizers.factor_qp import FactorQP, FactorQPSolution, solve_factor_qp
from optimizers.mean_variance import MeanVarianceOptimizer
from optimizers.rebalance import (Optimizer, expected_returns, holding_horizon, make_optimizer,
                                  rebalance_weights)
from optimizers.topk import TopkDropout

__all__ = ["FactorQP", "FactorQPSolution", "MeanVarianceOptimizer", "Optimizer", "RiskModel",
           "TopkDropout", "book_change_summary", "expected_returns", "holding_horizon",
           "ledoit_wolf_covariance", "make_optimizer", "rebalance_weights", "risk_model",
           "solve_factor_qp"]
