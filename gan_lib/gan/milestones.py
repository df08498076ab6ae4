"""What training writes after an iteration besides its log row: grids, snapshots, checkpoints.

:meth:`Milestones.after` says which are due; train.py's ``_write_milestones`` writes them in
order with the helpers here. Grids and snapshots show a generator under the sampling rule
(ARCHITECTURE.md): in eval mode, with BatchNorm statistics re-estimated on its own weights
(:func:`recalibrated_generator`).

Example:
    >>> from gan_lib import config
    >>> cfg = config.make_train_config("smoke", iterations=20, snapshot_at=(10, 20))
    >>> Milestones.after(10, cfg, batches_per_epoch=8)
    Milestones(grid=False, snapshot=True, checkpoint=True)
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import NamedTuple

import torch
from torch import nn

from ..config import TrainConfig
from . import grids, models, run_folder, sampling
from .batches import STREAM_BN, derived_seed
from .training_run import Run


class Milestones(NamedTuple):
    """What is written after an iteration (a checkpoint implies the log is flushed first)."""

    grid: bool  # the fixed-noise grid: at the end of every epoch and of training
    snapshot: bool  # a generator snapshot for scoring: at cfg.snapshot_at and the end
    checkpoint: bool  # everything to resume: every cfg.checkpoint_every and the end

    @classmethod
    def after(cls, step: int, cfg: TrainConfig, batches_per_epoch: int) -> Milestones:
        last = step == cfg.iterations
        return cls(grid=step % batches_per_epoch == 0 or last,
                   snapshot=step in cfg.snapshot_at or last,
                   checkpoint=step % cfg.checkpoint_every == 0 or last)


def check_weights_finite(run: Run) -> None:
    """Raise FloatingPointError if G or D holds a non-finite weight: a finite loss can still be
    followed by an update that overflows, and such weights must not reach a checkpoint."""
    params = [*run.nets.G.parameters(), *run.nets.D.parameters()]
    if not all(torch.isfinite(p).all() for p in params):
        raise FloatingPointError(f"Training diverged at iteration {run.step}: non-finite weights "
                                 "after a finite loss (an overflowing update)")


def recalibrated_generator(run: Run, raw: bool = False) -> tuple[nn.Module, dict[str, object]]:
    """(generator, how it samples) that grids and snapshots show: the EMA (if on and not
    ``raw``) or G, with BatchNorm statistics re-estimated on its own weights
    (sampling.recalibrate_batchnorm).

    The statistics BatchNorm kept during training (momentum 0.1) lag G and, for the EMA, belong
    to other weights; docs/training.md ("How generated images are sampled") shows the difference. The re-estimation's latents
    come from their own seed stream, so it leaves training's randomness untouched.
    """
    shown = run.nets.ema if run.nets.ema is not None and not raw else run.nets.G
    seed = derived_seed(run.cfg.seed, STREAM_BN, run.step)
    sampler = sampling.recalibrate_batchnorm(shown, run.cfg.bn_batches, run.cfg.batch_size, seed,
                                             run.classes)
    return sampler, sampling.sampling_record(run.cfg.bn_batches, run.cfg.batch_size, seed)


def save_grid(run: Run, sampler: nn.Module) -> None:
    """grids/epoch_XXXX.png: the fixed-noise grid of the epoch ``run.step`` ends (or is in)."""
    cfg = run.cfg
    epoch = (run.step - 1) // run.batches_per_epoch + 1  # 1-based, the epoch the step belongs to
    nrow = int(math.sqrt(cfg.grid_size))
    labels, row_labels = None, None
    if run.classes is not None:  # one block of rows per class, labelled
        labels = sampling.grid_labels(len(run.classes["names"]), cfg.grid_size)
        row_labels = [run.classes["names"][k] for k in labels[::nrow].tolist()]
    grid = sampling.generate(sampler, cfg.grid_size, seed=cfg.seed, labels=labels)  # fixed noise
    grids.save_grid_png(grid, run.folder / "grids" / f"epoch_{epoch:04d}.png", nrow=nrow,
                        row_labels=row_labels)


def save_snapshot(run: Run, weights: nn.Module, rule: dict[str, object],
                  raw: bool = False) -> Path:
    """snapshots/G_iter_XXXXXX.pt (``raw``: snapshots/raw/, G's own weights in an EMA run).

    The file holds the weights, their sampling rule, which weights they are (G or its EMA), and
    the running BatchNorm statistics training kept (G's: before the sampling rule, eval mode
    used these for G and for its EMA alike).
    """
    ema = run.nets.ema is not None and not raw
    folder = run.folder / "snapshots" / run_folder.RAW_SNAPSHOTS if raw else run.folder / "snapshots"
    path = folder / f"G_iter_{run.step:06d}.pt"
    kept = {k: v.detach().cpu() for k, v in models.unwrap(run.nets.G).state_dict().items()
            if k.endswith(("running_mean", "running_var", "num_batches_tracked"))}
    warm = ", warmed up as min(decay, (1 + n) / (10 + n))" if run.cfg.ema_warmup else ""
    sampling.save_snapshot(weights, path, run.step, sampling=rule, run=run.cfg.name,
                           precision=run.precision,
                           **({"classes": run.classes} if run.classes else {}), ema=ema,
                           weights=f"EMA of G (decay {run.cfg.ema_decay}{warm})" if ema else "G",
                           training_bn_stats=kept)
    return path


__all__ = ["Milestones", "check_weights_finite", "recalibrated_generator", "save_grid",
           "save_snapshot"]
