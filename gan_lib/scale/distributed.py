"""Several processes, one run: torch.distributed as ``torchrun`` sets it up (DDP).

``torchrun --nproc_per_node=N -m gan_lib train ...`` starts N copies of the command with
RANK, LOCAL_RANK and WORLD_SIZE in their environment; :func:`launched` joins them into one
process group (NCCL on GPUs, gloo on CPUs) and leaves it again. Without torchrun, or with one
process, every function here is the single-process identity: rank 0 of a world of 1.

What the rest of the package asks of it:

- who am I (:func:`rank`, :func:`world_size`, :func:`is_main`), and my slice of a global
  batch or of a list of images (:func:`shard`);
- the same value on every rank (:func:`mean`, :func:`gather_rows`, :func:`barrier`);
- BatchNorm over the global batch (:func:`sync_batchnorm`; :func:`local_batchnorm` undoes it
  for a copy that one rank evaluates alone): torch's SyncBatchNorm on GPUs, and on CPUs,
  where torch has no SyncBatchNorm kernels, :class:`GlobalBatchNorm2d`.

Example:
    >>> rank(), world_size(), shard(10)
    (0, 1, slice(0, 10, None))
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from collections.abc import Iterator

import torch
import torch.distributed as dist
import torch.distributed._functional_collectives as funcol  # differentiable all-reduce
from torch import nn


def requested() -> bool:
    """Was this process started as one of several (torchrun's WORLD_SIZE > 1)?"""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def active() -> bool:
    """Is a process group of more than one process joined?"""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    """Rank 0: the one process that writes files and shows progress."""
    return rank() == 0


def progress_bar() -> dict[str, bool]:
    """tqdm's keyword arguments: a bar on rank 0 only (its defaults and TQDM_* there)."""
    return {} if is_main() else {"disable": True}


def local_rank() -> int:
    """This process's index on its own machine (which GPU it uses)."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def backend() -> str:
    return "nccl" if torch.cuda.is_available() else "gloo"


@contextlib.contextmanager
def launched(timeout_minutes: float = 30) -> Iterator[None]:
    """Join torchrun's process group for the body (when started by torchrun), then leave it.

    Each process uses the GPU of its LOCAL_RANK. ``timeout_minutes`` bounds how long a rank
    waits at a collective for the others (rank 0 writing a checkpoint, a dead peer).
    """
    if not requested() or dist.is_initialized():
        yield
        return
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank())
    dist.init_process_group(backend(), timeout=dt.timedelta(minutes=timeout_minutes))
    try:
        yield
    finally:
        dist.destroy_process_group()


def barrier() -> None:
    if active():
        dist.barrier()


@contextlib.contextmanager
def main_first() -> Iterator[None]:
    """Rank 0 runs the body first (e.g. builds a data cache), the other ranks after it."""
    if not is_main():
        barrier()
    yield
    if is_main():
        barrier()


def shard(n: int) -> slice:
    """This rank's contiguous part of ``range(n)``: equal parts, the last ones shorter.

    >>> [shard_of(10, r, 3) for r in range(3)]
    [slice(0, 4, None), slice(4, 8, None), slice(8, 10, None)]
    """
    return shard_of(n, rank(), world_size())


def shard_of(n: int, r: int, world: int) -> slice:
    per = -(-n // world)
    return slice(min(r * per, n), min((r + 1) * per, n))


def mean(t: torch.Tensor) -> torch.Tensor:
    """The mean of ``t`` over the ranks (``t`` itself in one process)."""
    if not active():
        return t
    t = t.clone()
    dist.all_reduce(t)
    return t.div_(world_size())


def total(count: int) -> int:
    """The sum of ``count`` over the ranks (``count`` itself in one process)."""
    if not active():
        return count
    t = torch.tensor([count], dtype=torch.float64,
                     device=torch.device("cuda", local_rank()) if backend() == "nccl" else None)
    dist.all_reduce(t)
    return int(t.item())


def gather_rows(t: torch.Tensor, n: int) -> torch.Tensor:
    """Every rank's ``shard(n)`` rows of a table, concatenated in rank order: all ``n`` rows.

    ``t`` is this rank's part ([len(shard(n)), ...], on the CPU); the result is the same on
    every rank and equals what one process computing all ``n`` rows would hold.
    """
    if not active():
        return t
    world = world_size()
    per = -(-n // world)
    where = torch.device("cuda", local_rank()) if backend() == "nccl" else torch.device("cpu")
    padded = torch.zeros(per, *t.shape[1:], dtype=t.dtype, device=where)
    padded[:len(t)] = t
    parts = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(parts, padded)
    rows = [p[:len(range(n)[shard_of(n, r, world)])] for r, p in enumerate(parts)]
    return torch.cat(rows).cpu()


class GlobalBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics are those of the global batch, on any device.

    torch's SyncBatchNorm computes the same but runs only on GPUs. Here each rank sums its
    [count, sum, sum of squares] per channel, one differentiable all-reduce adds them up (its
    backward adds up the gradients, as the global batch's would be), and the normalisation,
    affine transform and running-statistics update are BatchNorm's. Outside training, or in a
    single process, it is BatchNorm2d.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and active()):
            return super().forward(x)
        xf = x.float()
        local = torch.stack([torch.full_like(xf[0, :, 0, 0], x.numel() / x.shape[1]),
                             xf.sum((0, 2, 3)), xf.square().sum((0, 2, 3))])
        count, total, squares = funcol.all_reduce(local, "sum", dist.group.WORLD)
        mean_ = total / count
        var = (squares / count - mean_.square()).clamp_min(0)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = self.momentum if self.momentum is not None else \
                    1.0 / float(self.num_batches_tracked)
                unbiased = var * count / (count - 1).clamp_min(1)
                self.running_mean.lerp_(mean_.detach(), m)
                self.running_var.lerp_(unbiased.detach(), m)
        shape = (1, -1, 1, 1)
        y = (xf - mean_.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y.to(x.dtype)


def sync_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """``module`` with every BatchNorm2d normalising over the global batch (same weights)."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    return _swap_batchnorm(module, GlobalBatchNorm2d)


def data_parallel(module: nn.Module, device: torch.device) -> nn.Module:
    """DDP around ``module``: gradients averaged over the ranks in backward.

    Buffers are not re-sent from rank 0 at each forward (``forward_sync_buffers=False``): the
    BatchNorm statistics are global already, so every rank holds the same ones.
    """
    ids = [device.index if device.index is not None else torch.cuda.current_device()] \
        if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(module, device_ids=ids, forward_sync_buffers=False)


def local_batchnorm(module: nn.Module) -> nn.Module:
    """``module`` with plain BatchNorm2d again (for a copy that one rank evaluates alone)."""
    return _swap_batchnorm(module, nn.BatchNorm2d)


def _swap_batchnorm(module: nn.Module, cls: type[nn.Module]) -> nn.Module:
    """Replace every BatchNorm layer by ``cls`` with the same settings, weights and statistics."""
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and type(module) is not cls:
        new = cls(module.num_features, module.eps, module.momentum, module.affine,
                  module.track_running_stats)
        new.load_state_dict(module.state_dict())
        new.train(module.training)
        p = next(module.parameters(), None)
        return new.to(p.device) if p is not None else new
    for name, child in module.named_children():
        swapped = _swap_batchnorm(child, cls)
        if swapped is not child:
            setattr(module, name, swapped)
    return module


__all__ = ["launched", "requested", "active", "rank", "world_size", "is_main", "local_rank",
           "progress_bar", "barrier", "main_first", "shard", "shard_of", "mean", "total", "gather_rows",
           "GlobalBatchNorm2d", "sync_batchnorm", "local_batchnorm", "data_parallel"]
