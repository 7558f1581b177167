"""benchmarks/walk_forward_validation.py: the blocks, and where `--before` may put them."""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from walk_forward_validation import (TEST_START, summarise, summary_lines,  # noqa: E402
                                     validation_split)

DATES = pd.bdate_range("2006-01-02", "2022-12-30")


def _blocks(**kwargs):
    from storm_bt.experiments.walkforward import refit_splits

    split = validation_split(DATES, 2, 252, argparse.ArgumentParser(), **kwargs)
    return split, refit_splits(DATES, split, 252)


def test_blocks_end_the_day_before_the_cutoff_and_never_reach_it():
    for before in (TEST_START, pd.Timestamp("2019-04-01")):
        split, blocks = _blocks(before=before)
        last_scored = blocks[-1].test[1]
        assert last_scored == DATES[DATES < before][-2]     # its label is the return into it
        assert all(b.test[1] < before and b.valid[1] < b.test[0] for b in blocks)
        assert len(blocks) == 2 and blocks[0].train[0] == pd.Timestamp("2008-04-01")


def test_an_earlier_cutoff_shares_no_scored_day_with_the_default_blocks():
    _, default = _blocks()
    _, early = _blocks(before=pd.Timestamp("2019-04-01"))
    assert early[-1].test[1] < default[0].test[0]


def test_a_cutoff_after_the_test_start_is_refused_in_one_line(capsys):
    with pytest.raises(SystemExit) as exc:
        _blocks(before=TEST_START + pd.Timedelta(days=1))
    assert exc.value.code == 2
    assert "--before 2021-04-02" in capsys.readouterr().err


def _daily(seed: int, shift: float) -> pd.Series:
    days = pd.bdate_range("2017-04-03", periods=30)
    rng = np.random.default_rng(seed)
    return pd.Series(0.01 * rng.standard_normal(30) + shift, days)


def test_runs_in_two_processes_summarise_as_one(tmp_path):
    """Seeds fitted in two processes: their --out files together give the lines one run
    of every seed would have printed."""
    daily = {(v, s): _daily(10 * s + i, 0.002 * i) for i, v in enumerate(["d44", "d45"])
             for s in (1, 2, 3)}
    for name, seeds in (("a.csv", (1, 2)), ("b.csv", (3,))):
        pd.DataFrame({f"{v}|{s}": daily[v, s] for v, s in daily if s in seeds}).to_csv(
            tmp_path / name)
    paths = [tmp_path / "a.csv", tmp_path / "b.csv"]
    expected = summary_lines(daily, ["d44", "d45"], [1, 2, 3])
    assert summarise(paths, None) == expected
    assert "over 3 seeds" in expected[1] and "higher on" in expected[1]
    diff = (pd.concat([daily["d45", s] for s in (1, 2, 3)], axis=1).mean(axis=1)
            - pd.concat([daily["d44", s] for s in (1, 2, 3)], axis=1).mean(axis=1)).mean()
    assert f"seed-averaged daily difference {diff:+.4f}" in expected[1]
    with pytest.raises(SystemExit, match="no seed has every variant"):
        summarise(paths, ["d44", "storm-ts"])
    other = tmp_path / "other.csv"
    pd.DataFrame({"RankIC": daily["d44", 1]}).to_csv(other)
    with pytest.raises(SystemExit, match=re.escape("column 'RankIC' is not 'variant|seed'")):
        summarise([other], None)
