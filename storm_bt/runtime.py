"""Process set-up shared by every command and model: seeds, CPU threads and the torch device.

One home for each, so that a run, a test and a benchmark set up the process the same way.
torch is imported only by the functions that need it, so the command line and the
non-neural models never load it.
"""
from __future__ import annotations

import contextlib
import os
import random
import sys
from typing import Iterator

import numpy as np

from storm_bt.errors import StormBtError

DEVICES = ("auto", "cpu", "cuda")


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (when it is loaded); cuDNN picks deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    if "torch" in sys.modules:
        import torch

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
    """Run the block with ``torch.set_num_threads(n)`` and restore the old value."""
    import torch

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
