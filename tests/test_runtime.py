"""Process set-up: the vector maths' first call runs on one thread, once, before model code."""
from __future__ import annotations

import pytest
import torch

import storm_bt.runtime as runtime


@pytest.fixture
def first_calls(monkeypatch):
    """The thread counts at which `prepare_vector_maths` computed its exp, in a process
    where it has not run yet."""
    monkeypatch.setattr(runtime, "_vector_maths_ready", False)
    threads: list[int] = []
    exp = torch.Tensor.exp

    def spy(self, *args, **kwargs):
        threads.append(torch.get_num_threads())
        return exp(self, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "exp", spy)
    return threads


def test_prepare_vector_maths_calls_once_on_one_thread_and_restores_threads(first_calls):
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        runtime.prepare_vector_maths()
        assert first_calls == [1]
        assert torch.get_num_threads() == 2
        runtime.prepare_vector_maths()
        assert first_calls == [1], "the first call is made once per process"
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("enter", [lambda: runtime.seed_everything(0),
                                   lambda: runtime.torch_threads(2).__enter__()],
                         ids=["seed_everything", "torch_threads"])
def test_model_entry_points_prepare_vector_maths(first_calls, enter):
    before = torch.get_num_threads()
    try:
        enter()
    finally:
        torch.set_num_threads(before)
    assert first_calls == [1]


def _three_steps(heap) -> dict:
    """Three SGD steps of a 512-wide MLP on 4096 rows (blocks of 8 MiB, above glibc's mmap
    threshold), from a fixed seed, inside the context ``heap``."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(512, 512), torch.nn.GELU(),
                                torch.nn.Linear(512, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(4096, 512), torch.randn(4096, 1)
    with heap:
        for _ in range(3):
            optimizer.zero_grad()
            torch.nn.functional.mse_loss(model(x), y).backward()
            optimizer.step()
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_retained_heap_trains_to_the_same_weights():
    from contextlib import nullcontext

    kept, plain = _three_steps(runtime.retained_heap()), _three_steps(nullcontext())
    assert kept.keys() == plain.keys()
    assert all(torch.equal(kept[k], plain[k]) for k in kept)


def test_retained_heap_sets_and_releases_glibc_parameters(monkeypatch):
    calls: list[tuple[int, int]] = []

    class FakeLibc:
        def mallopt(self, param, value):
            calls.append((param, value))
            return 1

        def malloc_trim(self, pad):
            calls.append(("trim", pad))
            return 1

    monkeypatch.setattr(runtime, "_glibc", lambda: FakeLibc())
    with pytest.raises(RuntimeError), runtime.retained_heap():
        assert calls == list(runtime._RETAINED.items())
        raise RuntimeError("the block fails")
    assert calls[len(runtime._RETAINED):] == list(runtime._RELEASED.items()) + [("trim", 0)]


def test_checked_seeds_keeps_order_drops_repeats_and_refuses_what_numpy_cannot_seed():
    import numpy as np
    import pytest

    from storm_bt.errors import StormBtError
    from storm_bt.runtime import checked_seeds

    assert checked_seeds([3, 1, 3, np.int64(2)]) == (3, 1, 2)
    assert checked_seeds([0, 2 ** 32 - 1]) == (0, 2 ** 32 - 1)
    for bad in ([-1], [2 ** 32], [1.5], [True], []):
        with pytest.raises(StormBtError, match="--seeds .*seeds are integers from 0 to"):
            checked_seeds(bad)


def test_the_machine_is_described_with_the_kernels_torch_uses():
    """A run records its CPU, cores and, with torch loaded, torch's vector instruction set
    (the weights a seed trains to depend on it) and the GPU (None on a CPU machine)."""
    import torch

    from storm_bt.experiments.record import machine_description

    machine = machine_description()
    assert machine["cpu"] and machine["logical_cores"] >= 1 and machine["platform"]
    assert machine["torch_cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert "gpu" in machine
