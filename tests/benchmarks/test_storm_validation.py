"""benchmarks/storm_validation.py: the selection scores paired by seed against the first
variant."""
from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from storm_validation import paired_scores  # noqa: E402


def test_scores_pair_by_seed_over_the_seeds_both_variants_have():
    table = pd.DataFrame({"variant": ["storm"] * 3 + ["storm-ts"] * 2 + ["storm-cs"],
                          "seed": [1, 2, 3, 1, 3, 2],
                          "valid RankIC 3-epoch mean": [0.030, 0.020, 0.040,
                                                        0.027, 0.045, 0.010]})
    pairs = paired_scores(table, "storm").set_index("model")
    ts = pairs.loc["storm-ts"]
    assert (ts.vs, ts.seeds, ts.valid_ahead) == ("storm", "1 3", "1 of 2")
    # differences -0.003 and +0.005: mean +0.001, se = std(ddof=1) / sqrt(2) = 0.004
    assert ts.valid_diff == pytest.approx(0.001)
    assert ts.valid_se == pytest.approx(0.004)
    cs = pairs.loc["storm-cs"]
    assert (cs.seeds, cs.valid_ahead) == ("2", "0 of 1")
    assert cs.valid_diff == pytest.approx(-0.010) and pd.isna(cs.valid_se)
