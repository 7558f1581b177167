"""The checkpoint cache under concurrency: one trainer per key, no half-read file."""
from __future__ import annotations

import errno
import logging
import subprocess
import sys

import pytest
from planted import planted_feature_set, planted_split

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


def test_atomic_writes_get_the_modes_of_any_new_file_and_leave_no_temporary(tmp_path):
    """A checkpoint or a read written under umask 022 is 0644 (readable by a team sharing
    the cache, or by workers running as another user), not mkstemp's 0600; a failed write
    leaves the old file and no temporary behind."""
    import os
    import stat

    from storm_bt.models.neural.checkpoint import write_atomic

    path = tmp_path / "cache" / "storm-x.pt"
    old = os.umask(0o022)
    try:
        write_atomic(path, lambda f: f.write(b"first"))
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
        os.umask(0o077)
        write_atomic(path, lambda f: f.write(b"second"))
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    finally:
        os.umask(old)

    def fails(f):
        f.write(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomic(path, fails)
    assert path.read_bytes() == b"second"
    assert [p.name for p in path.parent.iterdir()] == ["storm-x.pt"]


def test_a_cache_folder_that_cannot_be_made_is_a_user_error(tmp_path):
    """Library users (no CLI check in front) get a StormBtError naming the folder and the
    setting to change, not a NotADirectoryError from the lock file."""
    from storm_bt.errors import StormBtError
    from storm_bt.models.neural.checkpoint import key_lock

    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(StormBtError, match=r"checkpoint cache .*a_file/cache.*cache_dir"):
        with key_lock(blocker / "cache" / "lstm-x.pt"):
            pass


def test_a_checkpoint_that_cannot_be_written_costs_the_cache_not_the_fit(tmp_path, monkeypatch,
                                                                         caplog):
    """A full disk when the checkpoint is written (after what may be an hour's fit) used to
    end the run in an OSError traceback; the fitted model is kept, with a warning, and no
    file or temporary is left in the cache."""
    import storm_bt.models.neural.predictor as torch_predictor
    from storm_bt.models.baselines.lstm import LSTMPredictor

    def disk_full(path, payload):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch_predictor, "save_checkpoint", disk_full)
    data = planted_feature_set()
    with caplog.at_level(logging.WARNING, logger="storm_bt.models.neural.predictor"):
        model = LSTMPredictor(preset="tiny", history=8, hidden=16, epochs=1, batch_size=16,
                              num_threads=1, cache_dir=str(tmp_path / "cache"),
                              progress=False).fit(data, planted_split(data))
    assert model.source == "trained"
    assert model.predict(data, data.dates[270], data.dates[-1]).notna().any().any()
    assert "checkpoint not saved" in caplog.text and "no space left on device" in caplog.text
    assert not list((tmp_path / "cache").glob("*.pt"))
