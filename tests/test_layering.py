"""Every import runs down the pipeline.

    data -> features -> evaluation -> models -> optimizers | trading (policy stage)
         -> strategies (backtrader) -> reports -> experiments -> backtest (the CLI)

A module may import its own stage and the stages below it, never a stage above, and the
two peers of the policy stage (optimizers, trading) never import each other. Imports inside
functions count too: a lazy import of a higher stage is still a loop in the design. The
base modules (errors, runtime, trees, units) import only each other.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: stage -> rank; equal ranks are peers that must not import each other
STAGES: dict[str, int] = {
    "storm_bt.errors": 0, "storm_bt.runtime": 0, "storm_bt.units": 0, "storm_bt.trees": 0,
    "storm_bt.data": 1,
    "storm_bt.features": 2,
    "storm_bt.evaluation": 3,
    "storm_bt.models": 4,
    "optimizers": 5, "storm_bt.trading": 5,
    "strategies": 6,
    "reports": 7,
    "storm_bt.experiments": 8,
    "storm_bt.backtest": 9,
}
PACKAGES = ("storm_bt", "strategies", "optimizers", "reports")


def stage_of(module: str) -> str | None:
    """The longest stage name that ``module`` is or lies inside."""
    best = None
    for stage in STAGES:
        if module == stage or module.startswith(stage + "."):
            if best is None or len(stage) > len(best):
                best = stage
    return best


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import of one of our packages in ``path``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found += [(node.lineno, n) for n in names if n.split(".")[0] in PACKAGES]
    return found


SOURCES = sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def test_every_source_module_belongs_to_a_stage():
    strays = [module_name(p) for p in SOURCES
              if stage_of(module_name(p)) is None and module_name(p) != "storm_bt"]
    assert not strays, f"modules outside every stage: {strays}"


@pytest.mark.parametrize("stage", list(STAGES))
def test_imports_run_down_the_pipeline(stage):
    violations = []
    for path in SOURCES:
        own = stage_of(module_name(path))
        if own != stage:
            continue
        for line, target in imported_modules(path):
            other = stage_of(target)
            if other is None or other == own:
                continue
            if STAGES[other] > STAGES[own] or (STAGES[other] == STAGES[own] > 0):
                violations.append(f"{path.relative_to(ROOT)}:{line} imports {target} "
                                  f"({other}, above or beside {own})")
    assert not violations, "\n".join(violations)


def test_the_layering_check_sees_a_violation(tmp_path):
    """The check itself can fail: a model importing a strategy is caught."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from strategies import PortfolioStrategy\n")
    (line, target), = imported_modules(bad)
    assert STAGES[stage_of(target)] > STAGES["storm_bt.models"]
