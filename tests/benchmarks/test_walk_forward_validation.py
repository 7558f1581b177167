"""benchmarks/walk_forward_validation.py: the blocks, and where `--before` may put them."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from walk_forward_validation import TEST_START, validation_split  # noqa: E402

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
