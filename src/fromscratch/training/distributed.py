"""Data parallelism: one model copy per process, each computing gradients on its share of a batch.

`torchrun --nproc_per_node=N script.py` starts N processes and tells each who it is through the
environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT). Each process holds the whole
model; after the backward pass the gradients are averaged across processes (an all-reduce), so all
copies take the same optimizer step and stay identical. Why averaging is right: for a loss that is
a mean over the examples of a global batch split into N equal shares,

    ∇ (1/N) Σ_r L_r(θ) = (1/N) Σ_r ∇ L_r(θ)        (the gradient of a sum is the sum of gradients)

so the mean of the per-process gradients *is* the gradient of the global batch.

Splitting a step's data: the trainer accumulates `grad_accum` micro-batches per optimizer step; with
N processes, process r computes micro-batches r, r + N, r + 2N, ... (`my_micro_batches`). The
union over processes is exactly the micro-batches a single process would compute, so N processes
train the same model as one process with the same `grad_accum` (up to float rounding in the sums).

Backends: NCCL between GPUs, gloo between CPU processes.
"""

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist

from fromscratch.errors import UserError


@dataclass(frozen=True)
class World:
    """Who this process is among the processes training together."""

    rank: int = 0  # 0 .. size - 1; rank 0 logs and writes checkpoints
    size: int = 1
    local_rank: int = 0  # rank among the processes on this machine: which GPU to use

    @property
    def is_main(self) -> bool:
        return self.rank == 0


@contextmanager
def joined(device_type: str) -> Iterator[World]:
    """The World of this process, joining the process group torchrun describes if needed.

    A process started without torchrun (no WORLD_SIZE, or WORLD_SIZE=1) is a world of one and
    nothing is initialised. A group this function creates is destroyed on leaving; one that was
    already initialised (by the caller) is left alone.
    """
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if dist.is_available() and dist.is_initialized():
        yield World(dist.get_rank(), dist.get_world_size(), local_rank)
        return
    size = int(os.environ.get("WORLD_SIZE", 1))
    if size == 1:
        yield World()
        return
    if not dist.is_available():
        raise UserError("this torch build has no torch.distributed: run a single process")
    if device_type == "cuda":
        torch.cuda.set_device(local_rank)  # before NCCL starts, so each rank uses its own GPU
    dist.init_process_group("nccl" if device_type == "cuda" else "gloo")
    try:
        yield World(dist.get_rank(), dist.get_world_size(), local_rank)
    finally:
        dist.destroy_process_group()


def my_micro_batches(world: World, grad_accum: int) -> range:
    """The micro-batches of each step this process computes: rank, rank + size, ..."""
    if grad_accum % world.size:
        raise UserError(
            f"grad_accum ({grad_accum}) must be a multiple of the number of processes "
            f"({world.size}), so that each process computes an equal share of every step"
        )
    return range(world.rank, grad_accum, world.size)


def sum_over_processes(tensor: torch.Tensor, world: World) -> torch.Tensor:
    """Σ over processes of `tensor` (the tensor itself in a world of one)."""
    if world.size > 1:
        tensor = tensor.clone()
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def any_process(flags: list[bool], world: World, device: torch.device) -> list[bool]:
    """Each flag True on every process if it is True on any: all must stop at the same step."""
    if world.size == 1:
        return flags
    t = torch.tensor([float(flag) for flag in flags], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return [bool(value) for value in t.tolist()]
