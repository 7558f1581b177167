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
