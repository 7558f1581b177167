"""The checkpoint cache under concurrency: one trainer per key, no half-read file."""
from __future__ import annotations

import subprocess
import sys

import pytest

SCRIPT = """
import logging, sys
logging.basicConfig(level=logging.INFO, stream=sys.stderr)
sys.path.insert(0, {tests!r})
from planted import planted_feature_set, planted_split
from storm_bt.models.baselines.lstm import LSTMPredictor
data = planted_feature_set()
model = LSTMPredictor(preset="tiny", history=8, hidden=16, epochs=2, batch_size=16,
                      num_threads=1, cache_dir={cache!r}).fit(data, planted_split(data))
pred = model.predict(data, data.dates[270], data.dates[-1])
print(repr(float(pred.to_numpy().sum())))
"""


@pytest.mark.slow
def test_concurrent_processes_train_a_key_once_and_share_it(tmp_path):
    from pathlib import Path

    tests = str(Path(__file__).resolve().parent)
    code = SCRIPT.format(tests=tests, cache=str(tmp_path / "cache"))
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(3)]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [e[-2000:] for _, e in outputs]
    logs = "".join(err for _, err in outputs)
    assert logs.count("saved checkpoint") == 1  # one trainer for the key
    assert logs.count("reusing checkpoint") == 2  # the others waited and loaded it
    assert len({out.strip() for out, _ in outputs}) == 1  # everyone predicts the same
    assert len(list((tmp_path / "cache").glob("*.pt"))) == 1
    assert not list((tmp_path / "cache").glob("*.tmp"))
