"""Data-parallel helpers for ``torchrun`` (gloo on CPU, NCCL on GPU).

Elastic supernets run a different set of parameters for every sampled subnet,
and a training step accumulates the gradients of several subnets before one
optimizer step. Instead of ``DistributedDataParallel`` (whose reducer expects
one backward pass per step and needs ``find_unused_parameters=True`` and
``no_sync`` juggling here), the trainers call :func:`all_reduce_gradients`
once per optimizer step: one flat all-reduce of every parameter's accumulated
gradient (zeros for parameters no subnet used), divided by the world size.
Because every rank samples the same subnets (the sampling generator is seeded
from (seed, phase, epoch, step)), this equals DDP's averaged gradient exactly.

Only rank 0 writes files: guard writes with :func:`is_main_process`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str | None = None) -> DistInfo:
    """Join the process group that ``torchrun`` describes in the environment
    (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``); a plain ``python`` run is rank 0
    of 1. ``device``: "cpu", "cuda" or None (CUDA when available)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() if device is None else device.startswith("cuda")
    if use_cuda:
        torch.cuda.set_device(local_rank)
        torch_device = torch.device("cuda", local_rank)
    else:
        torch_device = torch.device("cpu")
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return DistInfo(rank, world_size, local_rank, torch_device)


def setup_process(device: str = "auto", threads: int = 0, batch_size: int | None = None,
                  dist_info: DistInfo | None = None) -> DistInfo:
    """What every trainer does first: join the process group (unless
    ``dist_info`` is given), set the number of torch threads (0: torch's
    default) and check that the global ``batch_size`` splits evenly over the
    processes (``ConfigError`` naming ``train.batch_size`` otherwise)."""
    from ..errors import ConfigError

    info = dist_info or init_distributed(None if device == "auto" else device)
    if threads:
        torch.set_num_threads(threads)
    if batch_size is not None and batch_size % info.world_size:
        raise ConfigError(f"train.batch_size = {batch_size} must be divisible by the number of processes "
                          f"({info.world_size})")
    return info


def is_initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    return dist.get_rank() if is_initialized() else 0


def get_world_size() -> int:
    return dist.get_world_size() if is_initialized() else 1


def is_main_process() -> bool:
    """True on the one process that writes checkpoints and logs."""
    return get_rank() == 0


def barrier() -> None:
    if is_initialized():
        dist.barrier()


def cleanup() -> None:
    if is_initialized():
        dist.destroy_process_group()


@torch.no_grad()
def all_reduce_gradients(model: torch.nn.Module) -> None:
    """Average the accumulated gradients of all ranks (one flat all-reduce).

    Parameters without a gradient on this rank take part as zeros, so the set
    of tensors reduced is the same on every rank whatever subnets ran."""
    if get_world_size() == 1:
        return
    params = [p for p in model.parameters() if p.requires_grad]
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    flat = torch.cat([p.grad.reshape(-1) for p in params])
    dist.all_reduce(flat)
    flat /= get_world_size()
    offset = 0
    for p in params:
        n = p.numel()
        p.grad.copy_(flat[offset:offset + n].view_as(p.grad))
        offset += n


@torch.no_grad()
def all_reduce_mean(tensor: torch.Tensor) -> torch.Tensor:
    """Mean of ``tensor`` over ranks (in place; returned for convenience)."""
    if get_world_size() > 1:
        dist.all_reduce(tensor)
        tensor /= get_world_size()
    return tensor


@torch.no_grad()
def average_buffers(model: torch.nn.Module) -> None:
    """Average floating-point buffers (BatchNorm running statistics) over ranks,
    so that rank 0's checkpoint reflects every rank's data."""
    if get_world_size() == 1:
        return
    for buffer in model.buffers():
        if buffer.is_floating_point():
            all_reduce_mean(buffer)


@torch.no_grad()
def broadcast_from_main(tensors) -> None:
    """Overwrite every rank's ``tensors`` (in place) with the main process's values: after work only the
    main process did (an evaluation that started quantisers' step sizes), so the ranks agree again."""
    if get_world_size() == 1:
        return
    for tensor in tensors:
        if tensor.dtype == torch.bool:  # gloo broadcasts no bool tensors
            carrier = tensor.data.to(torch.uint8)
            dist.broadcast(carrier, src=0)
            tensor.data.copy_(carrier.bool())
        else:
            dist.broadcast(tensor.data, src=0)


__all__ = ["DistInfo", "all_reduce_gradients", "all_reduce_mean", "average_buffers", "barrier", "broadcast_from_main",
           "cleanup", "get_rank", "get_world_size", "init_distributed", "is_initialized", "is_main_process", "setup_process"]
