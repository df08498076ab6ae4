"""The networks a run trains: G and D, their Adam optimisers, the EMA of G's weights, and the
objective both minimise (losses.Objective).

:func:`build_nets` builds them from a :class:`~gan_lib.config.TrainConfig` (seeded, so every
process and every resume starts from the same weights); :func:`update_ema` moves the EMA after
each G update; checkpoint.py saves and restores the same :class:`Networks`. Under torchrun, G and
D are wrapped by DDP (scale/distributed.py), and :attr:`Networks.D_without_ddp` reaches D inside its
wrapper for G's update.

Example:
    >>> from gan_lib import config
    >>> nets = build_nets(config.make_train_config("smoke", ema_decay=0.9), torch.device("cpu"))
    >>> nets.D_without_ddp is nets.D, nets.ema is not None  # one process: D itself
    (True, True)
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from ..config import TrainConfig
from ..scale import distributed
from . import models
from .losses import Objective


@dataclass
class Networks:
    """G and D with their Adam optimisers, and the EMA of G. ``G`` and ``D`` may be wrapped
    (torch.compile, DDP); models.unwrap reaches the module inside."""

    G: nn.Module
    D: nn.Module
    opt_G: torch.optim.Optimizer
    opt_D: torch.optim.Optimizer
    ema: nn.Module | None = None  # exponential moving average of G's weights, or None
    ema_decay: float = 0.0
    ema_warmup: bool = True  # the decay ramps up (ema_decay_at)
    # D for G's update: the same module and weights, outside DDP's wrapper. The wrapper is there
    # to average D's weight gradients over the ranks in the backward of D's update; G's update
    # computes no gradients for D's weights (train_step's backward(inputs=G's parameters)), so it
    # has nothing for DDP to average and skips the wrapper's bookkeeping for a backward that
    # never comes. BatchNorm still normalises over the global batch. In one process: D itself.
    D_without_ddp: nn.Module | None = None
    objective: Objective = Objective()  # the loss both updates minimise, and D's R1 penalty

    def __post_init__(self) -> None:
        if self.D_without_ddp is None:
            self.D_without_ddp = self.D


def build_nets(cfg: TrainConfig, device: torch.device, n_classes: int = 0,
               local: bool = False) -> Networks:
    """G and D initialised from ``cfg.seed`` (identical on every device) and their Adam optimisers.

    ``n_classes`` > 0 (a conditional run): G and D take class labels (models.py).
    Under torchrun both get BatchNorm over the global batch and a DDP wrapper that averages
    their gradients over the ranks; the optimisers hold the same parameters either way.
    ``local``: this process's networks alone even under torchrun (calibrate.py times rank 0's).
    """
    with torch.random.fork_rng(devices=[]):  # leave the caller's global RNG untouched
        torch.manual_seed(cfg.seed)
        G = models.Generator(cfg.z_dim, cfg.g_channels, cfg.image_size, n_classes=n_classes,
                             conditioning=cfg.g_conditioning, upsample=cfg.g_upsample)
        D = models.Discriminator(cfg.d_channels, cfg.image_size, n_classes=n_classes,
                                 norm=cfg.d_norm, mbstd=cfg.d_mbstd,
                                 classifier=cfg.ac_weight > 0)
        G.apply(models.weights_init)
        D.apply(models.weights_init)
        D.normalise_spectrally()  # d_norm="spectral" only; after init, so it measures its weights
    fmt = torch.channels_last if cfg.channels_last else torch.contiguous_format
    G, D = G.to(device, memory_format=fmt), D.to(device, memory_format=fmt)
    ema = copy.deepcopy(G).eval().requires_grad_(False) if cfg.ema_decay > 0 else None
    opt_G = torch.optim.Adam(G.parameters(), cfg.lr, betas=(cfg.beta1, cfg.beta2))
    lr_d, betas_d = cfg.adam_d()  # D's own under TTUR, else the same as G's
    opt_D = torch.optim.Adam(D.parameters(), lr_d, betas=betas_d)
    D_without_ddp = None  # None: D itself (one process)
    if distributed.active() and not local:
        G, D = distributed.sync_batchnorm(G, device), distributed.sync_batchnorm(D, device)
        D_without_ddp = D
        G, D = distributed.data_parallel(G, device), distributed.data_parallel(D, device)
    if cfg.compile:
        G, D = torch.compile(G), torch.compile(D)
        if D_without_ddp is not None:
            D_without_ddp = torch.compile(D_without_ddp)
    return Networks(G, D, opt_G, opt_D, ema, cfg.ema_decay, cfg.ema_warmup, D_without_ddp,
                    Objective(cfg.loss, cfg.r1_gamma, cfg.r1_every, cfg.ac_weight))


def ema_decay_at(decay: float, updates: int, warmup: bool = True) -> float:
    """The EMA's decay at its update number ``updates`` (0 for the first).

    Warmed up as tf.train.ExponentialMovingAverage does with ``num_updates``:
    min(decay, (1 + n) / (10 + n)), so the average forgets G's random initial weights early and
    reaches ``decay`` after (10 decay - 1) / (1 - decay) updates (8,991 for 0.999). Without
    it, an EMA of decay 0.999 still holds 0.999^600 = 55% of the initial weights after 600
    iterations, the quick profile's whole run. One line here rather than ema-pytorch: that
    package's defaults (update every 10th step after step 100, its own warm-up and step counter,
    BatchNorm buffers copied from G) would each have to be undone or checkpointed, and
    BatchNorm statistics are re-estimated at each snapshot anyway (the sampling rule).

    >>> [round(ema_decay_at(0.999, n), 3) for n in (0, 90, 600, 9000)]
    [0.1, 0.91, 0.985, 0.999]
    """
    return min(decay, (1 + updates) / (10 + updates)) if warmup else decay


@torch.no_grad()
def update_ema(nets: Networks, step: int) -> None:
    """Move the EMA of G's weights towards G after G's update of ``step`` (0-based):
    ema <- ema + (1 - decay) (G - ema). No EMA: nothing to do."""
    if nets.ema is None:
        return
    decay = ema_decay_at(nets.ema_decay, step, nets.ema_warmup)
    for e, p in zip(nets.ema.parameters(), models.unwrap(nets.G).parameters(), strict=True):
        e.lerp_(p, 1.0 - decay)


__all__ = ["Networks", "build_nets", "ema_decay_at", "update_ema"]
