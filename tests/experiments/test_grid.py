"""Experiment grids: task order, thread planning, task labels, and parallel == serial."""
from __future__ import annotations

import importlib.util
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from storm_bt.errors import StormBtError
from storm_bt.experiments import DataConfig, FactorsConfig, ModelSettings, run_factors
from storm_bt.experiments.grid import GridSettings, Task, plan_threads, run_grid

TICKERS = ("AAPL", "AMD", "BAC", "JNJ", "JPM", "KO", "MSFT", "PG", "XOM", "WMT")
DATA = DataConfig(tickers=TICKERS, train_start="2013-01-01", valid_start="2017-01-01",
                  test_start="2018-01-01", test_end="2018-06-29")


def _slow_square(x: int) -> int:
    time.sleep(0.05 * (3 - x))  # the first task finishes last
    return x * x


def _logs(x: int) -> int:
    logging.getLogger("storm_bt.test").info("working on %d", x)
    return x


def test_results_come_back_in_task_order_whatever_finishes_first():
    tasks = [Task(f"sq {i}", _slow_square, i) for i in range(4)]
    assert run_grid(tasks, GridSettings(jobs=2)) == [0, 1, 4, 9]
    assert run_grid(tasks, GridSettings(jobs=1)) == [0, 1, 4, 9]


def test_every_log_line_of_a_task_names_the_task(caplog):
    caplog.set_level(logging.INFO)
    logging.getLogger().addHandler(caplog.handler)
    try:
        run_grid([Task("lstm seed 2", _logs, 5)], GridSettings(jobs=1))
    finally:
        logging.getLogger().removeHandler(caplog.handler)
    assert any(r.getMessage() == "[lstm seed 2] working on 5" for r in caplog.records)


def test_threads_fit_the_cores_unless_asked(caplog):
    assert plan_threads(jobs=2, threads=None, cores=8) == 4
    assert plan_threads(jobs=4, threads=None, cores=2) == 1
    with caplog.at_level(logging.WARNING, logger="storm_bt.experiments.grid"):
        assert plan_threads(jobs=2, threads=2, cores=2) == 2
    assert "oversubscribed" in caplog.text


def test_no_thread_plan_is_logged_for_zero_threads(caplog):
    with caplog.at_level(logging.INFO, logger="storm_bt.experiments.grid"), \
            pytest.raises(StormBtError, match="--threads 0: use at least 1 thread"):
        plan_threads(jobs=1, threads=0, cores=2)
    assert caplog.records == []


@pytest.mark.parametrize("kwargs, needle", [
    (dict(backend="dask"), "--backend 'dask'"),
    (dict(jobs=0), "--jobs 0"),
    (dict(address="auto"), "--ray-address needs --backend ray"),
])
def test_bad_grid_settings_are_user_errors(kwargs, needle):
    with pytest.raises(StormBtError, match=needle):
        GridSettings(**kwargs)


@pytest.fixture(scope="module")
def serial_factors():
    config = FactorsConfig(data=DATA, models=("lightgbm",), seeds=(1, 2),
                           model_settings=ModelSettings(threads=1))
    return config, run_factors(config)


@pytest.mark.slow
def test_a_parallel_factor_grid_gives_the_serial_result(serial_factors):
    config, serial = serial_factors
    parallel = run_factors(config, GridSettings(jobs=2))
    assert serial.table.to_csv() == parallel.table.to_csv()
    assert serial.daily.to_csv() == parallel.daily.to_csv()


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                    reason="Ray is an optional extra: pip install '.[ray]'")
def test_the_ray_backend_gives_the_serial_result(serial_factors):
    config, serial = serial_factors
    on_ray = run_factors(config, GridSettings(backend="ray", jobs=2))
    assert serial.table.to_csv() == on_ray.table.to_csv()
    assert serial.daily.to_csv() == on_ray.daily.to_csv()


_INTERRUPTED_GRID = """
import os, sys, time
from pathlib import Path
from storm_bt.experiments.grid import GridSettings, Task, run_grid

def nap(config):
    i, folder = config
    Path(folder, f"worker-{os.getpid()}").touch()
    time.sleep(120)
    return i

if __name__ == "__main__":
    run_grid([Task(f"nap {i}", nap, (i, sys.argv[1])) for i in range(4)], GridSettings(jobs=2))
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:    # a zombie has ended
        return stat.read().split(")")[-1].split()[0] != "Z"


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads process states from /proc")
def test_sigterm_on_the_parent_stops_the_workers_mid_task(tmp_path):
    """Without the grid's handler, loky's workers outlive a killed parent and finish their
    task (minutes of training); with it they are gone within seconds."""
    script = tmp_path / "interrupted_grid.py"
    script.write_text(_INTERRUPTED_GRID)
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120           # worker start-up is slow on a busy machine
    while len(list(tmp_path.glob("worker-*"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    workers = [int(p.name.split("-")[1]) for p in tmp_path.glob("worker-*")]
    if len(workers) != 2:
        proc.kill()
        pytest.fail(f"{len(workers)} of 2 workers started in 120 s")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 128 + signal.SIGTERM
    deadline = time.monotonic() + 15
    while any(map(_alive, workers)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(map(_alive, workers)), "a worker outlived the interrupted grid"
    assert "grid interrupted: stopping the worker processes" in proc.stderr.read()
