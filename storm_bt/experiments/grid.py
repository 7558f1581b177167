"""Experiment grids: independent tasks run serially, on local processes, or on a Ray cluster.

A grid is a list of `Task`s. A task is a picklable pure function of a picklable config with
a label; it returns one result (a row, a frame). `run_grid` runs them and returns the results
**in the order of the tasks**, whatever order they finish in, so a parallel run writes
exactly the files a serial run writes.

Backends:
  - ``local`` (default): joblib's loky process pool with ``jobs`` workers; ``jobs=1`` runs
    in this process, one task after another.
  - ``ray``: one Ray task each, on a local Ray (``ray.init(num_cpus=jobs)``) or on an
    existing cluster (``address``, e.g. ``ray://head:10001`` or ``auto``); needs the extra
    ``pip install ".[ray]"``.

Threads: each task trains with its model settings' threads; `plan_threads` keeps jobs x
threads within the machine's cores unless the user asked for more, and says so in the log.
Progress: one tqdm bar over the grid; every log line a task writes names the task.
Interruption: Ctrl-C or SIGTERM on the parent stops the local workers at once (loky's
workers would otherwise finish their task, minutes of training, after the parent is gone).
"""
from __future__ import annotations

import logging
import signal
import sys
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from storm_bt.errors import StormBtError
from storm_bt.runtime import available_cores

log = logging.getLogger(__name__)

BACKENDS = ("local", "ray")
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


@dataclass(frozen=True)
class Task:
    """One independent unit of a grid: ``fn(config)``, named ``label`` in logs."""

    label: str
    fn: Callable[[Any], Any]
    config: Any


@dataclass(frozen=True)
class GridSettings:
    """How a grid runs: backend, worker processes (or Ray tasks at once), Ray address.

    The torch threads of each task are a model setting (`ModelSettings.threads`, planned by
    `plan_threads`), so they are recorded with the run's config.
    """

    backend: str = "local"
    jobs: int = 1
    address: str | None = None

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise StormBtError(f"--backend {self.backend!r}: choose one of {', '.join(BACKENDS)}")
        if self.jobs < 1:
            raise StormBtError(f"--jobs {self.jobs}: use at least 1")
        if self.address and self.backend != "ray":
            raise StormBtError("--ray-address needs --backend ray")


def plan_threads(jobs: int, threads: int | None, cores: int | None = None) -> int:
    """Torch threads per task: the user's choice, else cores // jobs (at least 1).

    Logs a warning when jobs x threads exceeds the cores (each job then runs many times
    slower), and the plan either way; refuses fewer than 1 thread before logging a plan.
    """
    if threads is not None and threads < 1:
        raise StormBtError(f"--threads {threads}: use at least 1 thread")
    cores = cores or available_cores()
    chosen = threads if threads is not None else max(1, cores // max(1, jobs))
    if jobs * chosen > cores:
        log.warning("%d jobs x %d threads = %d > %d cores: threads are oversubscribed "
                    "(asked for with --threads); each job will run slower", jobs, chosen,
                    jobs * chosen, cores)
    else:
        log.info("%d job(s) x %d thread(s) on %d cores", jobs, chosen, cores)
    return chosen


class _TaskLabel(logging.Filter):
    def __init__(self, label: str) -> None:
        super().__init__()
        self.label = label

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "task_label", None) is None:  # once, however many handlers
            record.task_label = self.label
            record.msg = f"[{self.label}] {record.msg}"
        return True


def _run_task(task: Task, level: int) -> Any:
    """Run one task with its label on every log line (in this process or a worker)."""
    root = logging.getLogger()
    if not root.handlers:  # a fresh worker process: log to stderr like the parent
        logging.basicConfig(level=level, format=LOG_FORMAT, datefmt="%H:%M:%S", stream=sys.stderr)
    label = _TaskLabel(task.label)
    handlers = list(root.handlers)
    for h in handlers:
        h.addFilter(label)
    try:
        return task.fn(task.config)
    finally:
        for h in handlers:
            h.removeFilter(label)


def run_grid(tasks: Sequence[Task], settings: GridSettings = GridSettings(),
             desc: str = "grid") -> list[Any]:
    """Every task's result, in task order (see the module docstring)."""
    from tqdm.auto import tqdm

    tasks = list(tasks)
    level = logging.getLogger().getEffectiveLevel()
    bar = tqdm(total=len(tasks), desc=desc, unit="task", disable=not tasks)
    try:
        if settings.backend == "ray":
            return _run_ray(tasks, settings, level, bar)
        if settings.jobs == 1 or len(tasks) <= 1:
            results = []
            for task in tasks:
                results.append(_run_task(task, level))
                bar.update()
            return results
        return _run_local(tasks, settings, level, bar)
    finally:
        bar.close()


def _run_local(tasks: list[Task], settings: GridSettings, level: int, bar) -> list[Any]:
    from joblib import Parallel, delayed

    results: list[Any] = [None] * len(tasks)
    parallel = Parallel(n_jobs=min(settings.jobs, len(tasks)), backend="loky",
                        return_as="generator_unordered")
    outputs = parallel(delayed(_indexed)(i, t, level) for i, t in enumerate(tasks))
    with _sigterm_as_exit():
        try:
            for index, value in outputs:
                results[index] = value
                bar.update()
        except (KeyboardInterrupt, SystemExit):
            log.warning("grid interrupted: stopping the worker processes")
            outputs.close()   # joblib then aborts the pending tasks and kills its workers
            raise
    return results


@contextmanager
def _sigterm_as_exit():
    """While the grid runs, SIGTERM raises SystemExit(143) in the main thread (instead of
    ending the process at once), so the workers can be stopped on the way out."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _indexed(index: int, task: Task, level: int) -> tuple[int, Any]:
    return index, _run_task(task, level)


def _run_ray(tasks: list[Task], settings: GridSettings, level: int, bar) -> list[Any]:
    try:
        import ray
    except ImportError:
        raise StormBtError("--backend ray needs Ray: pip install '.[ray]'") from None
    started_here = not ray.is_initialized()
    if started_here:
        if settings.address:
            ray.init(address=settings.address, log_to_driver=True)
        else:
            ray.init(num_cpus=settings.jobs, include_dashboard=False, log_to_driver=True)
    try:
        remote = ray.remote(num_cpus=1)(_indexed)
        pending = [remote.remote(i, t, level) for i, t in enumerate(tasks)]
        results: list[Any] = [None] * len(tasks)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            index, value = ray.get(done[0])
            results[index] = value
            bar.update()
        return results
    finally:
        if started_here:
            ray.shutdown()
