"""DDP under torchrun: the same command runs as one process or as many.

torchrun sets WORLD_SIZE, RANK and LOCAL_RANK; when WORLD_SIZE > 1 the trainer joins the process group
(gloo on CPU, nccl on CUDA), each rank trains on its slice of every global batch, gradients are averaged
by DistributedDataParallel, and only rank 0 writes metrics, checkpoints, plots and the progress bar.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init(device: str) -> DistInfo:
    """Join the process group torchrun prepared (no-op for a single process)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    info = DistInfo(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    return info


def device_for(device: str, info: DistInfo) -> torch.device:
    """cuda -> cuda:<local rank> under DDP (one GPU per process); cpu stays cpu."""
    if device == "cuda" and info.enabled:
        torch.cuda.set_device(info.local_rank)
        return torch.device("cuda", info.local_rank)
    return torch.device(device)


def all_sum(t: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Sum a small tensor over ranks (identity for one process)."""
    if info.enabled:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def broadcast_buffers(model: torch.nn.Module, info: DistInfo) -> None:
    """Give every rank rank 0's buffers (BN running statistics, running activation ranges).

    DDP broadcasts them at the start of each training forward, but that forward then updates them from each
    rank's own slice of the batch; evaluation and checkpoints should all see the same ones.
    """
    if info.enabled:
        for buf in model.buffers():
            dist.broadcast(buf, src=0)


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def shutdown(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()
