"""reports: from a daily return series to numbers, charts and a tear sheet.

The last stage of the pipeline; it knows nothing of backtrader, models or optimizers.

- `reports.metrics`: pure metric functions (standard, paper names, STORM-coded parity).
- `reports.plots`: equity and drawdown PNG.
- `reports.tearsheet`: quantstats HTML tear sheet (offline, benchmark as a Series).
- `reports.io`: atomic file writers; every output goes through them.
"""
from reports.io import (
    atomic_output,
    atomic_write_csv,
    atomic_write_json,
    atomic_write_text,
    check_writable_dir,
    ensure_writable_dir,
    staged_outputs,
    to_jsonable,
)
from reports.metrics import (
    annual_return,
    annual_volatility,
    calmar,
    cumulative_wealth,
    downside_deviation,
    drawdown_series,
    max_drawdown,
    one_way_turnover,
    performance_metrics,
    sharpe,
    sortino,
    storm_coded_metrics,
    trading_metrics,
    turnover,
)

#: names imported on first use: their modules load matplotlib and quantstats (about a
#: second), which a run that stops at its input checks never needs
_LAZY = {"plot_equity_drawdown": "reports.plots", "write_tearsheet": "reports.tearsheet"}


def __getattr__(name: str):
    """``from reports import write_tearsheet`` and the like: import the module on first use."""
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'reports' has no attribute {name!r}")


__all__ = [
    "annual_return",
    "annual_volatility",
    "atomic_output",
    "atomic_write_csv",
    "atomic_write_json",
    "atomic_write_text",
    "calmar",
    "check_writable_dir",
    "cumulative_wealth",
    "downside_deviation",
    "drawdown_series",
    "ensure_writable_dir",
    "max_drawdown",
    "one_way_turnover",
    "performance_metrics",
    "plot_equity_drawdown",
    "sharpe",
    "sortino",
    "staged_outputs",
    "storm_coded_metrics",
    "to_jsonable",
    "trading_metrics",
    "turnover",
    "write_tearsheet",
]
