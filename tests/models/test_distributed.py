"""DDP under torchrun: 2 CPU processes train the model a single process trains.

Each rank takes every other window of the same global batch and DDP averages the gradients,
so each step applies the mean gradient of the global batch. The LSTM's loss is a mean over
(window, stock) pairs and on this slice every stock is valid in every window, so the two
shards carry equal weight and the two runs differ only in the order of floating-point
sums: the daily ICs agree to 1e-5 (measured: about 1e-9 on these runs), far below any
difference between models.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ARGS = ["factors", "--tickers", "AAPL", "AMD", "BAC", "JNJ", "JPM", "KO", "MSFT", "PG", "XOM",
        "WMT", "--train-start", "2013-01-01", "--valid-start", "2017-01-01", "--test-start",
        "2018-01-01", "--test-end", "2018-06-29", "--models", "lstm", "--preset", "tiny",
        "--epochs", "2", "--threads", "1", "--retrain", "--log-level", "INFO"]


def _run(prefix: list[str], out: Path, cache: Path) -> subprocess.CompletedProcess:
    result = subprocess.run([*prefix, "-m", "storm_bt.backtest", *ARGS, "--out", str(out),
                             "--cache-dir", str(cache)], capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.mark.slow
def test_two_ddp_processes_train_what_one_process_trains(tmp_path):
    one = _run([sys.executable], tmp_path / "one", tmp_path / "cache1")
    two = _run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2"],
               tmp_path / "two", tmp_path / "cache2")
    assert "DDP over 2 ranks" in two.stderr and "DDP" not in one.stderr
    a = pd.read_csv(tmp_path / "one" / "daily_ic.csv")
    b = pd.read_csv(tmp_path / "two" / "daily_ic.csv")
    assert len(a) == len(b) > 100
    assert (a["IC"] - b["IC"]).abs().max() < 1e-5
    assert (a["RankIC"] - b["RankIC"]).abs().max() < 1e-5
    # Written once: one checkpoint, one set of outputs, one "wrote" line (rank 0's).
    assert len(list((tmp_path / "cache2").glob("*.pt"))) == 1
    assert two.stderr.count("saved checkpoint") == 1
    assert two.stderr.count("wrote ") == 1
