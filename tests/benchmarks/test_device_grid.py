"""benchmarks/device_grid.sh: workers under a deadline, then each variant's seed ensemble from
the checkpoints the workers saved (run here on the CPU, `tiny`, the embedded sample)."""
from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "device_grid.sh"

pytestmark = pytest.mark.skipif(shutil.which("bash") is None or shutil.which("timeout") is None,
                                reason="needs bash and coreutils' timeout")


def _grid(out: Path, queues: str, train_seconds: int) -> subprocess.CompletedProcess:
    env = {**os.environ, "DATA": "embedded", "OUTDIR": str(out), "DEVICE": "cpu",
           "PY": sys.executable, "QUEUES": queues, "TRAIN_SECONDS": str(train_seconds),
           "ENSEMBLE_SECONDS": "240", "ENSEMBLE_JOBS": "1",
           "EXTRA": "--preset tiny --epochs 1"}
    return subprocess.run(["bash", str(SCRIPT)], env=env, cwd=SCRIPT.parents[1],
                          capture_output=True, text=True, timeout=600)


def test_workers_fit_each_seed_and_the_ensemble_reuses_their_checkpoints(tmp_path):
    out = tmp_path / "grid"
    result = _grid(out, "a||1;a||2", train_seconds=400)
    assert result.returncode == 0, result.stderr
    for seed in (1, 2):
        rows = list(csv.DictReader((out / f"a_s{seed}" / "factors.csv").open()))
        assert [r["seed"] for r in rows] == [str(seed)]
        assert "trained in" in (out / "logs" / f"a_s{seed}.log").read_text()
    ensemble = list(csv.DictReader((out / "a_ens" / "ensembles.csv").open()))
    assert [(r["seeds"], r["n_seeds"]) for r in ensemble] == [("1 2", "2")]
    log = (out / "logs" / "a_ens.log").read_text()
    assert log.count("reusing checkpoint") == 2 and "trained in" not in log
    # the ensemble run predicts the members' test scores from their checkpoints again
    members = list(csv.DictReader((out / "a_ens" / "factors.csv").open()))
    for row in members:
        alone = next(csv.DictReader((out / f"a_s{row['seed']}" / "factors.csv").open()))
        assert float(row["RankIC"]) == pytest.approx(float(alone["RankIC"]), abs=1e-12)


def test_no_fit_starts_within_20_seconds_of_the_deadline(tmp_path):
    out = tmp_path / "grid"
    result = _grid(out, "a||1 2", train_seconds=15)
    assert result.returncode == 0, result.stderr
    assert not list(out.glob("a_*"))
    lines = (out / "logs" / "progress.txt").read_text().splitlines()
    assert not [line for line in lines if "seed" in line]
    assert lines[-1].endswith("ensembles done")


def test_one_tag_with_two_sets_of_flags_is_refused_before_any_fit(tmp_path):
    out = tmp_path / "grid"
    result = _grid(out, "a||1;a|--set d_model=64|2", train_seconds=400)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "tag 'a'" in lines[0] and "another tag" in lines[0]
    assert "Traceback" not in result.stderr and not out.exists()
