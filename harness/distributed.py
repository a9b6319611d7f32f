"""Data-parallel training across processes started by torchrun (one process per GPU, or per CPU slot).

torchrun sets RANK, LOCAL_RANK and WORLD_SIZE; without them a run is a single process and every
helper here is a no-op. NCCL on GPUs, gloo on CPUs. Each rank trains on its own shard of every epoch,
metrics are summed over ranks, and only rank 0 writes files.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from harness.errors import UsageError


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def sum_(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum a tensor over ranks in place (returns it for chaining)."""
        if self.enabled:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def max_(self, tensor: torch.Tensor) -> torch.Tensor:
        if self.enabled:
            dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
        return tensor

    def broadcast_buffers_(self, model: torch.nn.Module) -> None:
        """Copy rank 0's buffers (BatchNorm statistics) to every rank, as DDP does before each forward."""
        if self.enabled:
            for buffer in model.buffers():
                dist.broadcast(buffer, src=0)


def init_distributed(device_choice: str) -> tuple[Dist, torch.device | None]:
    """Join the torchrun job if there is one; returns the rank layout and this rank's device (or None)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return Dist(), None
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = device_choice != "cpu" and torch.cuda.is_available()
    if device_choice.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"--device={device_choice} but no CUDA GPU is visible: use --device=cpu or --device=auto")
    if not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    device = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(device)
    return Dist(rank, local_rank, world_size), device


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def weights_in_sync(model: torch.nn.Module, ranks: Dist) -> bool:
    """True when every rank holds the same weights (checked by one all-gather of a checksum per tensor)."""
    if not ranks.enabled:
        return True
    sums = torch.stack([p.detach().double().sum() for p in model.state_dict().values() if p.is_floating_point()])
    gathered = [torch.empty_like(sums) for _ in range(ranks.world_size)]
    dist.all_gather(gathered, sums)
    return all(torch.equal(gathered[0], other) for other in gathered[1:])
