"""One training run as train.py's loop sees it: settings, networks, data, folder, progress.

The loop carries this one object instead of a dozen parameters. :meth:`Run.next_batch` is its
data loader: the epoch's order and the step's batch are functions of (seed, epoch) and the step
(batches.py), so a resumed run sees the batches of the uninterrupted one.

Example:
    >>> from gan_lib import config
    >>> cfg = config.make_train_config("smoke", batch_size=4, device="cpu")
    >>> run = Run(cfg, None, torch.zeros(10, 1, 64, 64, dtype=torch.uint8), Path("runs/x"),
    ...           "fp32", "f" * 16, "zeros")
    >>> run.batches_per_epoch  # 10 images in batches of 4: 2 left over, not trained on that epoch
    2
    >>> run.step = 2  # two iterations done: the third opens epoch 2
    >>> epoch, real, labels = run.next_batch()
    >>> epoch, tuple(real.shape), labels
    (2, (4, 1, 64, 64), None)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..config import TrainConfig
from ..scale import distributed
from .batches import epoch_permutation, real_batch
from .trainable import Networks


@dataclass
class Run:
    """One training run as the loop sees it: settings, networks, data, where it writes, progress."""

    cfg: TrainConfig
    nets: Networks
    images: torch.Tensor  # uint8 [N, 1, S, S] on the training device
    folder: Path  # runs/<name>
    precision: str  # resolved: fp32 | bf16
    fingerprint: str  # of the data source (recorded in every checkpoint)
    description: str  # of the data source, for people ("synthetic phantom data ...")
    step: int = 0  # iterations done
    elapsed: float = 0.0  # training seconds before this process started, from the checkpoint
    labels: torch.Tensor | None = None  # int64 [N] on the device: a conditional run's classes
    classes: dict | None = None  # a conditional run's class names and ratio (snapshots keep it)
    data_info: dict | None = None  # config.json's "data" entry (run_folder.describe_data)
    calibration: dict | None = None  # how the precision was chosen (calibrate.training_precision)
    _order: tuple[int, torch.Tensor] | None = field(default=None, repr=False)  # (epoch, order)

    @property
    def batches_per_epoch(self) -> int:
        """Batches per epoch: the last incomplete batch of each epoch is dropped."""
        return len(self.images) // self.cfg.batch_size

    def next_batch(self) -> tuple[int, torch.Tensor, torch.Tensor | None]:
        """(1-based epoch, real batch in [-1, 1], its class labels or None) of iteration
        ``step`` + 1. Under DDP: this rank's rows of the global batch."""
        epoch, pos = divmod(self.step, self.batches_per_epoch)
        if self._order is None or self._order[0] != epoch:  # a fresh order for each epoch
            order = epoch_permutation(len(self.images), self.cfg.seed, epoch)
            self._order = (epoch, order.to(self.images.device))
        B = self.cfg.batch_size
        idx = self._order[1][pos * B:(pos + 1) * B][distributed.shard(B)]
        labels = self.labels[idx] if self.labels is not None else None
        return epoch + 1, real_batch(self.images, idx, self.cfg.channels_last), labels


__all__ = ["Run"]
