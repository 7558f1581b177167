"""Process set-up shared by every command and model: seeds, CPU threads and the torch device.

One home for each, so that a run, a test and a benchmark set up the process the same way.
torch is imported only by the functions that need it, so the command line and the
non-neural models never load it.

Vector maths. On an Intel CPU torch computes sqrt, exp, log, tanh, erf and their kin with
MKL's vector maths library (VML), which initialises itself on its first call in a process.
When that first call runs on two threads at once, one thread's share of it can come out at
reduced precision (measured on an Intel Xeon: half of 32,768 square roots off, by up to
3.2e-4 relative, in 2 of 40 fresh processes; `benchmarks/bench_determinism.py`). The first
training step of a fit then differs from one process to the next, and so does every weight
after it.
`prepare_vector_maths` makes that first call once, on one thread, before any model code
runs; `seed_everything` and `torch_threads` call it.

The heap. torch's CPU tensors come from malloc, and glibc serves a large block with a fresh
mmap and returns it to the system on free, so every training step faults in its batch and
activations page by page again. `retained_heap` keeps freed memory in the heap for a
training loop (glibc only; elsewhere it does nothing): the same numbers, a Dow 30 step of
STORM ``small`` about 3% faster (the journal's twenty-sixth-session timings).
"""
from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import os
import platform
import random
import sys
from typing import Iterator

import numpy as np

from storm_bt.errors import StormBtError

DEVICES = ("auto", "cpu", "cuda")

_vector_maths_ready = False


def prepare_vector_maths() -> None:
    """Make the process's first vector-maths call (an exp of a few numbers) on one thread,
    once, so that MKL's VML initialises without a race (module docstring). Every later call,
    on any number of threads, is then full-precision and the same in every process."""
    global _vector_maths_ready
    if _vector_maths_ready:
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.ones(16).exp()
    finally:
        torch.set_num_threads(before)
    _vector_maths_ready = True


#: glibc's mallopt parameters (malloc.h) and the values `retained_heap` sets and leaves
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD, _M_MMAP_MAX = -1, -2, -3, -4
_RETAINED = {_M_MMAP_MAX: 0, _M_TRIM_THRESHOLD: 1 << 30, _M_TOP_PAD: 64 << 20}
#: on leaving: what glibc's own adaptive thresholds reach on a warm process (mmap above
#: 32 MiB, trim above twice that), mmap allowed again, the default top pad
_RELEASED = {_M_MMAP_MAX: 65536, _M_MMAP_THRESHOLD: 32 << 20, _M_TRIM_THRESHOLD: 64 << 20,
             _M_TOP_PAD: 128 << 10}


@functools.cache
def _glibc():
    """The C library when it is glibc (it has mallopt and malloc_trim), else None; looked
    up once per process."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version  # noqa: B018 - only glibc has it
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except (OSError, AttributeError):
        return None


@contextlib.contextmanager
def retained_heap() -> Iterator[None]:
    """Run the block with freed memory kept in the heap: no block is served by mmap (so
    none is unmapped on free and faulted in again on the next step) and the heap's top is
    not trimmed below 1 GiB; on leaving, glibc's usual large-block handling comes back and
    the heap's free memory is returned to the system (malloc_trim). Where the C library is
    not glibc, the block runs as it is."""
    libc = _glibc()
    if libc is None:
        yield
        return
    for param, value in _RETAINED.items():
        libc.mallopt(param, value)
    try:
        yield
    finally:
        for param, value in _RELEASED.items():
            libc.mallopt(param, value)
        libc.malloc_trim(0)


def machine_description() -> dict[str, str | int | None]:
    """The machine a run's numbers came from: the CPU model, its logical cores, the OS and,
    when torch is loaded, the vector instructions its kernels use (e.g. AVX2, AVX512) and
    the GPU it used (None when it used none). Trained weights depend on these: the same
    seed, data and code trained on two CPUs gives two different networks (float32 kernels
    round differently), while one machine reruns a seed bit for bit."""
    cpu = platform.processor() or None
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next((line.split(":", 1)[1].strip() for line in info
                        if line.startswith("model name")), cpu)
    except OSError:
        pass
    machine: dict[str, str | int | None] = {"cpu": cpu, "logical_cores": os.cpu_count(),
                                             "platform": platform.platform()}
    torch = sys.modules.get("torch")
    if torch is not None:
        machine["torch_cpu_capability"] = torch.backends.cpu.get_cpu_capability()
        # the GPU the process used: asking an unused CUDA would start it (seconds, memory)
        machine["gpu"] = (torch.cuda.get_device_name(torch.cuda.current_device())
                          if torch.cuda.is_initialized() else None)
    return machine


def checked_seeds(seeds, flag: str = "--seeds") -> tuple[int, ...]:
    """``seeds`` without repeats, in their order, each checked to be an integer in
    [0, 2^32): numpy's and LightGBM's seeds take no other (a negative seed ended in a
    numpy traceback), and a repeated seed would count one fit twice in a mean ± se."""
    seeds = tuple(dict.fromkeys(seeds))
    bad = [s for s in seeds if isinstance(s, bool) or not isinstance(s, (int, np.integer))
           or not 0 <= s < 2 ** 32]
    if not seeds or bad:
        shown = " ".join(map(str, bad or seeds)) or "(none)"
        raise StormBtError(f"{flag} {shown}: seeds are integers from 0 to 4294967295")
    return tuple(int(s) for s in seeds)


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (when it is loaded; its vector maths prepared by
    `prepare_vector_maths`); cuDNN picks deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    if "torch" in sys.modules:
        import torch

        prepare_vector_maths()
        torch.manual_seed(seed)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False


def resolve_device(device: str):
    """'auto' -> CUDA when present else CPU; 'cuda' without a GPU is a user error."""
    import torch

    if device not in DEVICES:
        raise StormBtError(f"--device {device!r}: use one of {', '.join(DEVICES)}")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise StormBtError("--device cuda: no CUDA device is available; use --device cpu or auto")
    return torch.device(device)


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(n)`` (vector maths prepared first,
    `prepare_vector_maths`) and restore the old value."""
    import torch

    prepare_vector_maths()
    before = torch.get_num_threads()
    torch.set_num_threads(max(1, int(n)))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def available_cores() -> int:
    """CPU cores this process may use (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1
