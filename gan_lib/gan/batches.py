"""What each training step sees: the run's images, the epoch order, the batch, the latents.

All of it is a function of (seed, epoch) or (seed, step), never of a global random state, so a
resumed run sees exactly the batches and latents of the uninterrupted one, and a grid or score
draws the same latents however it is batched.

Example:
    >>> epoch_permutation(5, seed=0, epoch=3).tolist() == epoch_permutation(5, 0, 3).tolist()
    True
"""

from __future__ import annotations

import torch

from ..config import TrainConfig

# The random streams of derived_seed: each kind of randomness draws from its own, so a change in
# one never shifts another. The numbers are part of every run's results; never reuse one.
STREAM_EPOCH_ORDER = 1  # the order of the images in each epoch (item: the epoch)
STREAM_LATENTS = 2  # the latents of each training step (item: the step)
STREAM_BN = 3  # latents that re-estimate BatchNorm at a milestone (item: the step)
STREAM_AUGMENT = 4  # DiffAugment's draws (item: step * 3 + which D evaluation; augment.py)
STREAM_LABELS = 5  # class labels drawn for a conditional G (item: 0; sampling.sample_labels)
# studies/classifier.py uses 11-12 and studies/utility.py 13-14.


def select_subset(images: torch.Tensor, cfg: TrainConfig) -> torch.Tensor:
    """The training images of ``cfg``: all, or ``cfg.subset`` of them in a seeded random order.

    Checks the shape the models need, and that there is at least one full batch.

    >>> from gan_lib import config
    >>> cfg = config.make_train_config("smoke", subset=40, batch_size=8)
    >>> select_subset(torch.zeros(100, 1, 64, 64, dtype=torch.uint8), cfg).shape[0]
    40
    """
    n, size = len(images), cfg.image_size
    if images.dtype != torch.uint8 or tuple(images.shape[1:]) != (1, size, size):
        raise ValueError(f"load_dataset returned {images.dtype} {tuple(images.shape)}: expected "
                         f"uint8 [N, 1, {size}, {size}] for image_size={size}")
    if cfg.subset is not None:
        if cfg.subset > n:
            raise ValueError(f"subset={cfg.subset}: the data source {cfg.source!r} has only {n} "
                             "training images; lower subset or set it to None (all)")
        images = images[trained_indices(n, cfg)]
    if len(images) < cfg.batch_size:
        raise ValueError(f"batch_size={cfg.batch_size}: the data source {cfg.source!r} has only "
                         f"{len(images)} training images; lower batch_size")
    return images.contiguous()


def trained_indices(n: int, cfg: TrainConfig) -> torch.Tensor:
    """Which of the ``n`` images of the training split a run of ``cfg`` trains on, in order.

    >>> from gan_lib import config
    >>> trained_indices(5, config.make_train_config("smoke", subset=None)).tolist()
    [0, 1, 2, 3, 4]
    """
    if cfg.subset is None:
        return torch.arange(n)
    return torch.randperm(n, generator=torch.Generator().manual_seed(cfg.seed))[:cfg.subset]


def real_batch(images: torch.Tensor, idx: torch.Tensor, channels_last: bool = False) -> torch.Tensor:
    """uint8 images [N, 1, S, S] (on the device) at ``idx`` -> float [B, 1, S, S] in [-1, 1]."""
    real = images[idx].float().div_(127.5).sub_(1.0)
    return real.contiguous(memory_format=torch.channels_last) if channels_last else real


def step_latents(cfg: TrainConfig, step: int, noise: torch.Generator) -> torch.Tensor:
    """The latents [B, z_dim] of iteration ``step`` + 1: a function of (seed, step) only."""
    noise.manual_seed(derived_seed(cfg.seed, STREAM_LATENTS, step))
    return torch.randn(cfg.batch_size, cfg.z_dim, device=noise.device, generator=noise)


def derived_seed(seed: int, stream: int, k: int) -> int:
    """A 63-bit seed for item ``k`` of random ``stream`` (one of the STREAM_* above)."""
    return (seed * 0x9E3779B97F4A7C15 + stream * 0xBF58476D1CE4E5B9 + k * 0x94D049BB133111EB) % 2**63


def epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The order of the ``n`` training images in ``epoch`` (0-based), on the CPU."""
    order = torch.Generator().manual_seed(derived_seed(seed, STREAM_EPOCH_ORDER, epoch))
    return torch.randperm(n, generator=order)
