"""Under DDP the EMA codebooks follow the whole global batch, and every rank keeps the same
codebook: two gloo processes, each quantising half of a batch, against one process
quantising all of it."""
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


def _rank(rank: int, store: str, idle_reset: bool, out) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    try:
        quantizer = _quantizer(dead_code_idle_steps=1 if idle_reset else 0)
        z = _batch()[rank::2]                      # this rank's shard of the global batch
        if idle_reset:
            quantizer.idle_steps[:3] = 5.0         # three codes idle too long: reset now
        for _ in range(2):
            quantizer(z)
        out.put((rank, {k: v.clone() for k, v in quantizer.state_dict().items()},
                 quantizer.usage.clone()))
    finally:
        dist.destroy_process_group()


def _two_ranks(tmp_path, idle_reset: bool) -> dict:
    ctx = mp.get_context("fork")
    out = ctx.Queue()
    procs = [ctx.Process(target=_rank, args=(r, str(tmp_path / "store"), idle_reset, out))
             for r in range(2)]
    for p in procs:
        p.start()
    results = {}
    for _ in procs:
        rank, state, usage = out.get(timeout=120)
        results[rank] = (state, usage)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    return results


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
