"""Scale: one run in several processes, as ``torchrun`` starts them (DDP).

``distributed`` holds the process group (rank, world size, rank 0 alone writes), how work is
sharded and gathered, and BatchNorm over the global batch. In one process every function is the
identity, so the code above it never asks how many processes there are. It sits below ``gan``
because training, sampling and scoring all call it; the launcher that starts ``torchrun``
calls training, so it lives above, in :mod:`gan_lib.gan.launch`.
"""

from . import distributed
from .distributed import (
    GlobalBatchNorm2d,
    data_parallel,
    gather_rows,
    is_main,
    launched,
    rank,
    requested,
    shard,
    world_size,
)

__all__ = ["distributed", "launched", "requested", "rank", "world_size", "is_main", "shard", "gather_rows",
           "GlobalBatchNorm2d", "data_parallel"]
