"""Data-parallel training across processes: torch's DistributedDataParallel (DDP).

Launched by ``torchrun --nproc-per-node K -m storm_bt.backtest ...`` (or across machines with
``--nnodes``), every process gets RANK, LOCAL_RANK and WORLD_SIZE in its environment;
`init_from_env` then joins the process group (gloo on CPU, NCCL on CUDA). Without torchrun
nothing here does anything: ``world_size() == 1`` and training runs as before.

How a step is split: every rank draws the same global batch of B windows (the same seed,
so the same permutation and stock subset), keeps the windows ``i ≡ rank (mod W)`` and
computes its losses on them; DDP averages the gradients over the ranks, so each step
applies the mean of the W shard gradients. Validation, model selection and early stopping
run on every rank on the same data, so every rank makes the same choice; only rank 0
writes checkpoints and run outputs.

For that mean to be the single-process gradient of the global batch (up to the order of
floating-point sums), a term that is not a mean over equal shards must see the global
batch, and the helpers below do that:
- masked means over labelled stocks (the return, prediction and IC terms, the baselines'
  MSE) divide by the labelled count of every rank (`count_per_rank`), so shards with
  different numbers of labelled stocks weigh as one batch does;
- STORM's diversity entropy of the batch-mean code distribution (`mean_over_ranks`) and its
  CLIP negatives (`rows_of_all_ranks`) take the other ranks' sums and rows as constants,
  and `rank_weighted` scales the term's gradient by W;
- STORM's EMA codebooks sum their code counts and code sums over the ranks before the
  update (`sum_over_ranks`), so every rank computes one process's update, and a dead
  code's replacement is rank 0's pick (`from_rank0`); DDP also broadcasts rank 0's buffers
  at every step.
- STORM's means over windows and their elements (reconstruction, KL, commitment, the price
  constraint) are weighted by each shard's share of the windows (`window_share`), so a
  batch size that is not a multiple of W weighs as one batch does.
Tested with two processes against one, with equal and with unequal shards.
"""
from __future__ import annotations

import logging
import os
import sys

import numpy as np

log = logging.getLogger(__name__)


def _process_group():
    """``torch.distributed`` when a process group is joined, else None. A process that never
    imported it has joined none, so this does not import torch (the command line's error
    paths and ``--help`` stay fast)."""
    dist = sys.modules.get("torch.distributed")
    return dist if dist is not None and dist.is_available() and dist.is_initialized() else None


def world_size() -> int:
    dist = _process_group()
    return dist.get_world_size() if dist is not None else 1


def rank() -> int:
    dist = _process_group()
    return dist.get_rank() if dist is not None else 0


def is_main_process() -> bool:
    """True without torchrun, and on rank 0 under it: the process that writes files."""
    return int(os.environ.get("RANK", "0")) == 0 if world_size() == 1 else rank() == 0


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_from_env(device: str = "auto") -> None:
    """Join the process group that torchrun describes in the environment (once)."""
    import torch
    import torch.distributed as dist

    if not launched_by_torchrun() or dist.is_initialized():
        return
    use_cuda = device != "cpu" and torch.cuda.is_available()
    backend = "nccl" if use_cuda else "gloo"
    if use_cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend=backend)
    log.info("rank %d of %d joined the %s process group", dist.get_rank(),
             dist.get_world_size(), backend)


def sum_over_ranks(tensor):
    """``tensor`` summed over the ranks, in place (and returned); itself without a process
    group. For statistics that carry no gradient."""
    if world_size() > 1:
        import torch.distributed as dist

        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def mean_over_ranks(local):
    """(N_r, ...) -> (...): the mean over the first axis of every rank's rows (the ranks may
    hold different numbers). The other ranks' sums enter as constants, so the gradient
    reaches this rank's rows only; with `rank_weighted`, DDP's mean over the ranks then
    applies the global term's whole gradient. ``local.mean(0)`` without a process group."""
    if world_size() == 1:
        return local.mean(dim=0)
    import torch

    count = sum_over_ranks(torch.tensor(float(local.shape[0]), device=local.device))
    mine = local.sum(dim=0)
    total = sum_over_ranks(mine.detach().clone())
    return (mine + (total - mine.detach())) / count


def rows_of_all_ranks(local):
    """(N_r, ...) -> (N, ...): every rank's rows in rank order, this rank's carrying their
    gradient and the others' as constants (all_gather; the ranks may hold different numbers
    of rows). ``local`` itself without a process group."""
    if world_size() == 1:
        return local
    import torch
    import torch.distributed as dist

    sizes = [torch.zeros(1, dtype=torch.long, device=local.device) for _ in range(world_size())]
    dist.all_gather(sizes, torch.tensor([local.shape[0]], device=local.device))
    longest = int(max(sizes).item())
    padded = torch.zeros((longest, *local.shape[1:]), dtype=local.dtype, device=local.device)
    padded[: local.shape[0]] = local.detach()
    parts = [torch.empty_like(padded) for _ in range(world_size())]
    dist.all_gather(parts, padded)
    parts = [part[: int(n.item())] for part, n in zip(parts, sizes)]
    parts[rank()] = local
    return torch.cat(parts)


def count_per_rank(count, floor: float = 1.0):
    """The denominator of a masked mean under DDP: max(C, floor) / W, C the count summed over
    the ranks, so that DDP's mean over the ranks of sum_r / it is the global batch's
    sum / C, whatever each shard holds (``count.clamp_min(floor)`` without a process
    group). A constant: no gradient flows through it."""
    if world_size() == 1:
        return count.clamp_min(floor)
    return sum_over_ranks(count.detach().clone()).clamp_min(floor) / world_size()


def window_share(n_windows: int) -> float | None:
    """W n_r / N for this rank's n_r of the N windows every rank holds together: a mean over
    this rank's windows (or their elements) times it is this rank's part of the global
    batch's mean, under DDP's mean over the ranks. None without a process group."""
    if world_size() == 1:
        return None
    import torch

    total = float(sum_over_ranks(torch.tensor(float(n_windows))).item())
    return world_size() * n_windows / total


def rank_weighted(term):
    """``term`` in the forward pass, W times its gradient in the backward pass: for a term
    of the global batch whose gradient reaches only this rank's rows (`mean_over_ranks`,
    `rows_of_all_ranks`), so that DDP's mean over the W ranks applies its whole gradient."""
    if world_size() == 1:
        return term
    return term + (world_size() - 1) * (term - term.detach())


def from_rank0(tensor):
    """Rank 0's ``tensor`` on every rank, in place (and returned); itself without a process
    group. Every rank must pass a tensor of the same shape."""
    if world_size() > 1:
        import torch.distributed as dist

        dist.broadcast(tensor, src=0)
    return tensor


def shard(ends: np.ndarray) -> np.ndarray:
    """This rank's windows of a global batch: every W-th, starting at the rank."""
    return ends[rank()::world_size()] if world_size() > 1 else ends


def ddp_wrap(model):
    """``model`` wrapped in DistributedDataParallel with ``forward(batch) = model.losses(batch)``;
    the model itself where there is no process group."""
    if world_size() == 1:
        return model
    import torch
    from torch import nn
    from torch.nn.parallel import DistributedDataParallel

    class _Losses(nn.Module):
        def __init__(self, inner: nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, batch):
            return self.inner.losses(batch)

    device = next(model.parameters()).device
    ids = [device.index] if device.type == "cuda" else None
    wrapped = DistributedDataParallel(_Losses(model), device_ids=ids,
                                      find_unused_parameters=True)
    wrapped.losses = wrapped.__call__  # train_step calls .losses(batch): through DDP's hooks
    torch.distributed.barrier()
    return wrapped
