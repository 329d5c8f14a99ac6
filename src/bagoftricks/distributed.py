"""The few ``torch.distributed`` helpers every trick shares.

On a single process (no initialized process group) each helper is a no-op, so a
trick calls them unconditionally and stays the same code on one or many ranks.
"""

from __future__ import annotations

import contextlib
import gc

import torch
import torch.distributed as dist

from .moments import chan_merge


def is_distributed() -> bool:
    """True when a process group is initialized with more than one rank."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    """Number of ranks (1 without an initialized process group)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    """This process's rank (0 without an initialized process group)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` over all ranks in one collective; returns a new tensor.

    Pack several sums (for example a loss sum and a sample count) into one tensor so a
    read costs a single all-reduce.
    """
    out = tensor.clone()
    if is_distributed():
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out


def all_gather(tensor: torch.Tensor) -> list[torch.Tensor]:
    """Every rank's ``tensor`` (same shape on all ranks), in rank order."""
    if not is_distributed():
        return [tensor]
    out = [torch.empty_like(tensor) for _ in range(world_size())]
    dist.all_gather(out, tensor.contiguous())
    return out


def mean_over_ranks(value: float) -> float:
    """The mean of a Python number over all ranks (the number itself on one process)."""
    if not is_distributed():
        return value
    t = torch.tensor([float(value)], dtype=torch.float64)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.item() / world_size()


def any_rank(flag: bool) -> bool:
    """True on every rank when ``flag`` is true on at least one (one collective)."""
    return bool(all_reduce_sum(torch.tensor([int(flag)])).item())


def rank_share(weight, global_batch_size: int):
    """The factor that makes DDP's gradient average over ranks the gradient of the global
    batch's (weighted) mean: ``world * weight / sum over ranks of weight``.

    ``weight`` is this rank's batch weight from ``weighted_loss(..., return_weight=True)``:
    an int batch size (unweighted: the sum is ``global_batch_size``, no collective) or a
    tensor (one all-reduce)."""
    if isinstance(weight, torch.Tensor):
        total = all_reduce_sum(weight.detach().reshape(1))[0]
        return weight.detach() * world_size() / total.clamp_min(torch.finfo(total.dtype).tiny)
    return weight * world_size() / global_batch_size


class _Forward:
    """Calls the DDP-wrapped model; ``release`` drops the only reference to it."""

    def __init__(self, net: torch.nn.Module) -> None:
        self.net = net

    def __call__(self, *args, **kwargs):
        return self.net(*args, **kwargs)

    def release(self) -> None:
        self.net = None
        gc.collect()


@contextlib.contextmanager
def data_parallel(model: torch.nn.Module, device: torch.device | None = None):
    """A callable forward through ``DistributedDataParallel(model)`` when distributed
    (else ``model`` itself; on a GPU, this rank's), whose wrapper is freed on exit: a DDP
    reducer collected after the process group is destroyed aborts the process
    ("terminate called ...")."""
    if not is_distributed():
        yield model
        return
    on_gpu = device is not None and device.type == "cuda"
    forward = _Forward(torch.nn.parallel.DistributedDataParallel(
        model, device_ids=[device] if on_gpu else None))
    try:
        yield forward
    finally:
        forward.release()


def init_from_env(device: torch.device | None = None, timeout_seconds: float = 300) -> bool:
    """Join the process group that ``torchrun`` describes in the environment: NCCL when
    this rank trains on a GPU (``device``), gloo otherwise (a GLM, a CPU run, or more
    processes than GPUs). Returns True when running distributed."""
    import datetime
    import os

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    if not dist.is_initialized():
        on_gpu = device is not None and device.type == "cuda"
        if on_gpu:
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if on_gpu else "gloo",
                                timeout=datetime.timedelta(seconds=timeout_seconds))
    return True


def merge_moments(count: torch.Tensor, mean: torch.Tensor, m2: torch.Tensor) -> tuple:
    """Per-feature (count, mean, M2) merged over all ranks by Chan's rule, in rank order,
    so every rank gets bit-identical statistics (float64 on the CPU)."""
    gathered = all_gather(torch.stack([count, mean, m2]).double().cpu())
    merged = tuple(gathered[0])
    for g in gathered[1:]:
        merged = chan_merge(merged, tuple(g))
    return merged


def shutdown() -> None:
    """Leave the process group cleanly (a barrier, then destroy) if one was joined."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
