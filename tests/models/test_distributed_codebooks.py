"""STORM under DDP computes one process's step on the global batch: two gloo processes, each
with half of a batch, against one process with all of it (the EMA codebooks, a dead code's
replacement, and the averaged gradient of every parameter)."""
from __future__ import annotations

import multiprocessing as mp

import pytest
import torch

from storm_bt.models.storm.quantizer import VectorQuantizer

DIM, CODES = 8, 16


def _quantizer(**kw) -> VectorQuantizer:
    torch.manual_seed(0)
    return VectorQuantizer(DIM, CODES, decay=0.9, normalize=True, dead_code_threshold=0.0,
                           **kw).train()


def _batch() -> torch.Tensor:
    return torch.randn(6, 5, DIM, generator=torch.Generator().manual_seed(1))


def _in_process_group(rank: int, store: str, work, args: tuple, out) -> None:
    """In a forked process: join a 2-rank gloo group and put (rank, work(rank, *args))."""
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    try:
        out.put((rank, work(rank, *args)))
    finally:
        dist.destroy_process_group()


def _on_two_ranks(tmp_path, work, *args) -> dict:
    """{rank: work(rank, *args)} from two forked processes in one gloo group. ``work`` must
    return numpy arrays (pickled by value: a tensor would travel as shared memory that dies
    with its process)."""
    ctx = mp.get_context("fork")
    out = ctx.Queue()
    procs = [ctx.Process(target=_in_process_group,
                         args=(r, str(tmp_path / "store"), work, args, out)) for r in range(2)]
    for p in procs:
        p.start()
    results = dict(out.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    return results


def _quantize_shard(rank: int, idle_reset: bool):
    quantizer = _quantizer(dead_code_idle_steps=1 if idle_reset else 0)
    z = _batch()[rank::2]                          # this rank's shard of the global batch
    if idle_reset:
        quantizer.idle_steps[:3] = 5.0             # three codes idle too long: reset now
    for _ in range(2):
        quantizer(z)
    return ({k: v.numpy().copy() for k, v in quantizer.state_dict().items()},
            quantizer.usage.numpy().copy())


def _two_ranks(tmp_path, idle_reset: bool) -> dict:
    return {rank: ({k: torch.from_numpy(v) for k, v in state.items()}, torch.from_numpy(usage))
            for rank, (state, usage) in _on_two_ranks(tmp_path, _quantize_shard,
                                                      idle_reset).items()}


@pytest.mark.slow
def test_two_ranks_update_the_codebook_as_one_process_on_the_whole_batch(tmp_path):
    ranks = _two_ranks(tmp_path, idle_reset=False)
    single = _quantizer()
    for _ in range(2):
        single(_batch())
    for rank in (0, 1):
        state, usage = ranks[rank]
        for key, value in single.state_dict().items():
            torch.testing.assert_close(state[key], value, msg=f"rank {rank}: {key}")
        torch.testing.assert_close(usage, single.usage)    # the global batch's code counts


@pytest.mark.slow
def test_a_dead_codes_replacement_is_rank_0s_pick_on_every_rank(tmp_path):
    ranks = _two_ranks(tmp_path, idle_reset=True)
    (first, _), (second, _) = ranks[0], ranks[1]
    for key in first:
        torch.testing.assert_close(second[key], first[key], rtol=0, atol=0, msg=key)
    untouched = _quantizer().codebook
    assert not torch.equal(first["codebook"][:3], untouched[:3])     # the reset happened


def _storm_shard_gradients(rank: int, n_windows: int) -> dict:
    from storm_bt.models.neural.distributed import sum_over_ranks

    model, batch = _storm_model_and_batch(n_windows)
    model.losses(_rows(batch, slice(rank, None, 2)))["total"].backward()
    return {k: (sum_over_ranks(p.grad.clone()) / 2).numpy()           # DDP's mean over ranks
            for k, p in model.named_parameters() if p.grad is not None}


def _storm_model_and_batch(n_windows: int):
    from storm_bt.models.storm import StormModel, tiny
    from storm_bt.models.storm.synthetic import random_batch

    config = tiny.with_data(6, 12, ("open", "high", "low", "close", "adj_close"))
    torch.manual_seed(0)
    # a fifth of the labels missing, so the two shards hold different numbers of them
    return StormModel(config).train(), random_batch(config, n=n_windows, p_missing=0.2)


def _rows(batch, rows):
    from dataclasses import fields, replace

    return replace(batch, **{f.name: getattr(batch, f.name)[rows] for f in fields(batch)
                             if isinstance(getattr(batch, f.name), torch.Tensor)})


@pytest.mark.slow
@pytest.mark.parametrize("n_windows", [8, 7])            # 7: shards of 4 and 3 windows
def test_two_ranks_apply_one_process_gradient_of_the_whole_batch(tmp_path, n_windows):
    """STORM under DDP: the mean of the two shards' gradients is the whole batch's gradient.
    The batch-level terms (the diversity entropy of the batch-mean code distribution, the
    CLIP negatives) see the global batch, the masked means over labelled stocks divide by
    the global count, and the means over windows weigh each shard by its windows, so shards
    of different sizes, with different numbers of labels, weigh as one batch."""
    ranks = _on_two_ranks(tmp_path, _storm_shard_gradients, n_windows)
    model, batch = _storm_model_and_batch(n_windows)
    model.losses(batch)["total"].backward()
    for key, param in model.named_parameters():
        if param.grad is None:
            continue
        for rank in (0, 1):
            torch.testing.assert_close(torch.from_numpy(ranks[rank][key]), param.grad,
                                       rtol=1e-4, atol=1e-6,
                                       msg=f"rank {rank}: {key}")
