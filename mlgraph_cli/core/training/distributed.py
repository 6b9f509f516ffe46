"""Data-parallel training across processes, launched by ``torchrun``.

``torchrun --nproc-per-node=N -m mlgraph_cli train ...`` starts N copies of the command and sets
``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK`` in each (the ``env://`` rendezvous). This module reads
them, opens the process group (``nccl`` on CUDA, ``gloo`` on the CPU), and offers the few
collectives the trainer needs. Without those variables everything degrades to one process and
no collective is ever called, so the single-process path has no distributed code in it.

Rank 0 alone writes files; the other ranks compute gradients and wait.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

ENV_VARS = ("WORLD_SIZE", "RANK", "LOCAL_RANK")


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands: ``rank`` of ``world_size`` processes, ``local_rank`` on its node."""

    world_size: int = 1
    rank: int = 0
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """True on the process that writes files and prints (rank 0)."""
        return self.rank == 0


def dist_info_from_env(environ: dict[str, str] | None = None) -> DistInfo:
    """Read the torchrun variables; absent or ``WORLD_SIZE=1`` means one process."""
    env = os.environ if environ is None else environ
    try:
        world = int(env.get("WORLD_SIZE", "1"))
        rank = int(env.get("RANK", "0"))
        local = int(env.get("LOCAL_RANK", str(rank)))
    except ValueError:
        return DistInfo()
    if world <= 1:
        return DistInfo()
    return DistInfo(world_size=world, rank=rank, local_rank=local)


def backend_for(device_type: str) -> str:
    """``nccl`` for CUDA devices, ``gloo`` for everything else (CPU tests, Apple)."""
    return "nccl" if device_type == "cuda" else "gloo"


def setup(info: DistInfo, device_type: str) -> None:
    """Join the process group of a torchrun launch (a no-op for one process).

    On CUDA each process drives the GPU of its ``LOCAL_RANK``; the caller builds its device as
    ``cuda:<local_rank>`` (see :func:`device_for`).
    """
    if not info.enabled:
        return
    if dist.is_initialized():
        return
    if device_type == "cuda":
        torch.cuda.set_device(info.local_rank)
    dist.init_process_group(backend=backend_for(device_type), init_method="env://",
                            world_size=info.world_size, rank=info.rank)


def device_for(info: DistInfo, device: str) -> str:
    """The device of this rank: ``cuda`` becomes ``cuda:<local_rank>`` under torchrun."""
    if info.enabled and device.startswith("cuda"):
        return f"cuda:{info.local_rank}"
    return device


def teardown(info: DistInfo) -> None:
    if not info.enabled:
        return
    if dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def all_reduce_sum(info: DistInfo, values: list[float], device) -> list[float]:
    """Element-wise sum of a few numbers over all ranks (float64, so loss sums stay exact enough)."""
    if not info.enabled:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.tolist()


def broadcast_object(info: DistInfo, value, src: int = 0):
    """``value`` from rank ``src`` on every rank (a small picklable Python object, sent in memory only)."""
    if not info.enabled:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=src)
    return box[0]
