"""DCGAN generator and discriminator (Radford et al. 2016) for 1-channel images, and generation.

Sizes are constructor arguments; the number of layers follows from ``image_size`` (32, 64, 128):
each stride-2 layer doubles (G) or halves (D) the side, between 4x4 and the image. At 64x64 with
the default widths these are the networks of the PyTorch DCGAN example with one image channel.

Example:
    >>> G, D = Generator(image_size=64), Discriminator(image_size=64)
    >>> count_parameters(G), count_parameters(D)
    (3574656, 2763520)
    >>> D(G(torch.randn(2, 100))).shape
    torch.Size([2])
"""

from __future__ import annotations

import copy
import math
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import distributed, io


def _n_scales(image_size: int) -> int:
    """Stride-2 layers between 4x4 and image_size x image_size (64 -> 4)."""
    if image_size not in (32, 64, 128):
        raise ValueError(f"image_size={image_size}: expected 32, 64 or 128")
    return int(math.log2(image_size)) - 2


class Generator(nn.Module):
    """z [N, z_dim] -> image [N, nc, S, S] in [-1, 1] (tanh)."""

    def __init__(self, z_dim: int = 100, g_channels: int = 64, image_size: int = 64, nc: int = 1):
        super().__init__()
        self.kwargs = dict(z_dim=z_dim, g_channels=g_channels, image_size=image_size, nc=nc)
        self.z_dim = z_dim
        n = _n_scales(image_size)
        ch = g_channels * 2 ** (n - 1)  # 64 px: 512 feature maps at 4x4
        layers: list[nn.Module] = [
            # [N, z_dim, 1, 1] -> [N, ch, 4, 4]
            nn.ConvTranspose2d(z_dim, ch, 4, 1, 0, bias=False),
            nn.BatchNorm2d(ch),
            nn.ReLU(True),
        ]
        for _ in range(n - 1):
            # [N, ch, s, s] -> [N, ch/2, 2s, 2s]
            layers += [
                nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1, bias=False),
                nn.BatchNorm2d(ch // 2),
                nn.ReLU(True),
            ]
            ch //= 2
        # [N, g_channels, S/2, S/2] -> [N, nc, S, S]
        layers += [nn.ConvTranspose2d(ch, nc, 4, 2, 1, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.main(z.reshape(z.shape[0], self.z_dim, 1, 1))


class Discriminator(nn.Module):
    """image [N, nc, S, S] -> logit [N] (no sigmoid: the loss is BCE on logits)."""

    def __init__(self, d_channels: int = 64, image_size: int = 64, nc: int = 1):
        super().__init__()
        self.kwargs = dict(d_channels=d_channels, image_size=image_size, nc=nc)
        n = _n_scales(image_size)
        # [N, nc, S, S] -> [N, d_channels, S/2, S/2]; no BatchNorm on the input layer (DCGAN)
        layers: list[nn.Module] = [
            nn.Conv2d(nc, d_channels, 4, 2, 1, bias=False),
            nn.LeakyReLU(0.2, inplace=True),
        ]
        ch = d_channels
        for _ in range(n - 1):
            # [N, ch, s, s] -> [N, 2ch, s/2, s/2]
            layers += [
                nn.Conv2d(ch, ch * 2, 4, 2, 1, bias=False),
                nn.BatchNorm2d(ch * 2),
                nn.LeakyReLU(0.2, inplace=True),
            ]
            ch *= 2
        # [N, ch, 4, 4] -> [N, 1, 1, 1]
        layers.append(nn.Conv2d(ch, 1, 4, 1, 0, bias=False))
        self.main = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x).flatten()


def weights_init(m: nn.Module) -> None:
    """DCGAN init: conv weights N(0, 0.02); BatchNorm weight N(1, 0.02), bias 0. Use ``net.apply``."""
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(m.weight, 0.0, 0.02)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


def count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


# --- generator-only snapshots: what generation and scoring read --------------------------------


SNAPSHOT_FORMAT = 2  # 2: BatchNorm statistics re-estimated on the snapshot's own weights
SAMPLING_RULE = "batchnorm-recalibrated"


def sampling_record(batches: int, batch_size: int, seed: int) -> dict[str, Any]:
    """How a snapshot's BatchNorm statistics were made: stored in it, reported with its scores."""
    return {"rule": SAMPLING_RULE, "batches": batches, "batch_size": batch_size, "seed": seed,
            "description": f"eval-mode BatchNorm with statistics re-estimated on the snapshot's "
                           f"own weights over {batches} batches of {batch_size} latents"}


def save_snapshot(G: Generator, path: str | os.PathLike, iteration: int,
                  sampling: dict[str, Any], **meta: Any) -> None:
    """Write G's weights, how it samples, and the constructor arguments to rebuild it (atomic)."""
    state = {k: v.detach().cpu() for k, v in unwrap(G).state_dict().items()}
    io.save_torch({"format": SNAPSHOT_FORMAT, "kwargs": unwrap(G).kwargs, "state_dict": state,
                   "iteration": iteration, "sampling": sampling, **meta}, path)


def read_snapshot(snapshot: str | os.PathLike) -> dict[str, Any]:
    """A snapshot file's contents; a clear error for a missing, unreadable or older file."""
    path = Path(snapshot)
    if not path.is_file():
        raise FileNotFoundError(f"Generator snapshot {path} not found: expected a file written "
                                "by train(), e.g. runs/NAME/snapshots/G_iter_000500.pt")
    try:
        blob = io.load_torch(path)
        found = blob.get("format")
    except Exception as err:  # truncated file, foreign pickle
        raise ValueError(f"{path} is not a readable generator snapshot ({err}); "
                         "re-create it by training or resuming the run") from err
    if found != SNAPSHOT_FORMAT:
        raise ValueError(f"{path} is a generator snapshot of format {found}; this gan_lib reads "
                         f"format {SNAPSHOT_FORMAT}, which records how BatchNorm samples. "
                         "Train the run again (overwrite=True) to re-create its snapshots.")
    return blob


def load_generator(snapshot: str | os.PathLike, device: str | torch.device = "cpu",
                   bn_stats: str = "sampling") -> Generator:
    """Rebuild a Generator from a snapshot file, in eval mode on ``device``.

    ``bn_stats="sampling"`` (the rule every grid, score and sample uses) keeps the statistics
    re-estimated for the snapshot; ``"training"`` puts back the running averages training had
    kept, to measure what the rule changes (benchmarks/bn_sampling.py).
    """
    blob = read_snapshot(snapshot)
    state = dict(blob["state_dict"])
    if bn_stats == "training":
        state.update(blob["training_bn_stats"])
    elif bn_stats != "sampling":
        raise ValueError(f"bn_stats={bn_stats!r}: expected 'sampling' or 'training'")
    try:
        G = Generator(**blob["kwargs"])
        G.load_state_dict(state)
    except Exception as err:  # wrong keys or shapes
        raise ValueError(f"{snapshot} is not a readable generator snapshot ({err}); "
                         "re-create it by training or resuming the run") from err
    return G.to(device).eval()


@torch.no_grad()
def generate(snapshot: str | os.PathLike | Generator, n: int, seed: int = 0,
             batch_size: int = 256, device: str | torch.device = "cpu",
             rows: slice | None = None) -> torch.Tensor:
    """``n`` images as uint8 [n, 1, S, S] on the CPU, from a snapshot file or a Generator.

    Latent i depends only on (seed, i), never on batch_size, so the same call gives the same
    images however it is batched. ``rows`` (a slice of range(n)) generates only those images
    of the ``n``, as one process's share of the set.

    >>> imgs = generate(Generator(g_channels=8, image_size=32), n=5, seed=0)
    >>> imgs.dtype, tuple(imgs.shape)
    (torch.uint8, (5, 1, 32, 32))
    """
    G = snapshot if isinstance(snapshot, nn.Module) else load_generator(snapshot, device)
    was_training = G.training
    G.eval()
    z = torch.randn(n, unwrap(G).z_dim, generator=torch.Generator().manual_seed(seed))
    z = z[rows] if rows is not None else z
    dev = next(G.parameters()).device
    out = [to_uint8(G(z[i:i + batch_size].to(dev))).cpu() for i in range(0, len(z), batch_size)]
    G.train(was_training)
    return torch.cat(out) if out else torch.empty(0, 1, 0, 0, dtype=torch.uint8)


@torch.no_grad()
def recalibrate_batchnorm(G: nn.Module, batches: int, batch_size: int, seed: int) -> nn.Module:
    """A copy of ``G`` in eval mode whose BatchNorm statistics belong to its own weights.

    "Precise BN" (Wu & Johnson 2021): every training step normalised with the statistics of its
    own batch, while the running averages that eval mode uses lag a fast-moving G (momentum
    0.1) and, for an EMA generator, belong to other weights altogether. Here they are reset and
    re-estimated as the equal-weight mean over ``batches`` batches of ``batch_size`` fresh
    latents (``momentum=None``), the training batch size, with latents drawn from ``seed``.
    Eval-mode samples from the copy then do not depend on the batch they are drawn in.

    >>> G = Generator(z_dim=8, g_channels=4, image_size=32)
    >>> bn = recalibrate_batchnorm(G, batches=2, batch_size=4, seed=0).main[1]
    >>> bool(bn.num_batches_tracked == 2), G.main[1].num_batches_tracked.item()
    (True, 0)
    """
    G = distributed.local_batchnorm(copy.deepcopy(unwrap(G)))  # one process evaluates it
    norms = [m for m in G.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [bn.momentum for bn in norms]
    for bn in norms:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average: every batch weighs the same
    G.train()
    latents = torch.Generator().manual_seed(seed)
    device = next(G.parameters()).device
    for _ in range(batches):
        G(torch.randn(batch_size, G.z_dim, generator=latents).to(device))
    for bn, momentum in zip(norms, momenta, strict=True):
        bn.momentum = momentum
    return G.eval()


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] floats -> uint8 0..255 (the range Inception extractors expect)."""
    return ((x.float() + 1) * 127.5).round_().clamp_(0, 255).to(torch.uint8)


def unwrap(net: nn.Module) -> nn.Module:
    """The plain module behind torch.compile's and DDP's wrappers."""
    net = getattr(net, "_orig_mod", net)
    return net.module if isinstance(net, nn.parallel.DistributedDataParallel) else net
