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

import math
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import io


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


def save_snapshot(G: Generator, path: str | os.PathLike, iteration: int, **meta: Any) -> None:
    """Write G's weights with the constructor arguments needed to rebuild it (atomic)."""
    state = {k: v.detach().cpu() for k, v in _unwrap(G).state_dict().items()}
    io.save_torch({"kwargs": _unwrap(G).kwargs, "state_dict": state, "iteration": iteration,
                   **meta}, path)


def load_generator(snapshot: str | os.PathLike, device: str | torch.device = "cpu") -> Generator:
    """Rebuild a Generator from a snapshot file, in eval mode on ``device``."""
    path = Path(snapshot)
    if not path.is_file():
        raise FileNotFoundError(f"Generator snapshot {path} not found: expected a file written "
                                "by train(), e.g. runs/NAME/snapshots/G_iter_000500.pt")
    try:
        blob = io.load_torch(path)
        G = Generator(**blob["kwargs"])
        G.load_state_dict(blob["state_dict"])
    except Exception as err:  # truncated file, foreign pickle, wrong keys or shapes
        raise ValueError(f"{path} is not a readable generator snapshot ({err}); "
                         "re-create it by training or resuming the run") from err
    return G.to(device).eval()


@torch.no_grad()
def generate(snapshot: str | os.PathLike | Generator, n: int, seed: int = 0,
             batch_size: int = 256, device: str | torch.device = "cpu") -> torch.Tensor:
    """``n`` images as uint8 [n, 1, S, S] on the CPU, from a snapshot file or a Generator.

    Latent i depends only on (seed, i), never on batch_size, so the same call gives the same
    images however it is batched.

    >>> imgs = generate(Generator(g_channels=8, image_size=32), n=5, seed=0)
    >>> imgs.dtype, tuple(imgs.shape)
    (torch.uint8, (5, 1, 32, 32))
    """
    G = snapshot if isinstance(snapshot, nn.Module) else load_generator(snapshot, device)
    was_training = G.training
    G.eval()
    z = torch.randn(n, _unwrap(G).z_dim, generator=torch.Generator().manual_seed(seed))
    dev = next(G.parameters()).device
    out = [to_uint8(G(z[i:i + batch_size].to(dev))).cpu() for i in range(0, n, batch_size)]
    G.train(was_training)
    return torch.cat(out) if out else torch.empty(0, 1, 0, 0, dtype=torch.uint8)


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] floats -> uint8 0..255 (the range Inception extractors expect)."""
    return ((x.float() + 1) * 127.5).round_().clamp_(0, 255).to(torch.uint8)


def _unwrap(net: nn.Module) -> nn.Module:
    """The plain module behind torch.compile's wrapper."""
    return getattr(net, "_orig_mod", net)
