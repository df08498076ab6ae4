"""Differentiable augmentation (DiffAugment, Zhao et al. 2020) for training on few images.

With a few thousand images the discriminator memorises the training set. DiffAugment applies
one random, differentiable transform family to *every* batch D sees, real and generated, in
the D step and in the G step, so D never sees an unaugmented image and G's gradients flow back
through the transform. (Augmenting only the real images would teach G to generate augmented
images.) Written here for 1-channel images in [-1, 1]:

- ``translation``: shift each image by up to 1/8 of its size in x and y, filled with black
  (-1, a radiograph's border);
- ``cutout``: set one square of half the image's side, at a random place, to 0 (mid-grey);
- ``brightness``: add a value drawn in [-0.5, 0.5) per image;
- ``contrast``: scale each image about its own mean by a factor drawn in [0.5, 1.5).

Each op draws its parameters per image and clamps to [-1, 1], so augmented images stay valid
images. The randomness of a D evaluation is a function of (seed, step, which evaluation) only,
as the latents are, so a resumed run augments exactly as an uninterrupted one.

Example:
    >>> x = torch.zeros(4, 1, 16, 16)
    >>> aug = Augment("translation,cutout", seed=0)
    >>> aug(x, step=0, call=CALL_D_REAL).shape, Augment("", seed=0)(x, 0, CALL_D_REAL) is x
    (torch.Size([4, 1, 16, 16]), True)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..config import AUGMENT_OPS as OPS
from .batches import STREAM_AUGMENT, derived_seed

# The D evaluations of one step, each with its own draws: ``call`` of :meth:`Augment.__call__`.
CALL_D_REAL = 0  # the real batch, in D's update
CALL_D_FAKE = 1  # the generated batch, in D's update
CALL_G_FAKE = 2  # the generated batch, in G's update
CALLS = 3


def parse_policy(policy: str) -> tuple[str, ...]:
    """``"translation,cutout"`` -> ('translation', 'cutout'); unknown names raise.

    >>> parse_policy(" brightness, contrast ")
    ('brightness', 'contrast')
    """
    ops = tuple(op.strip() for op in policy.split(",") if op.strip())
    unknown = [op for op in ops if op not in OPS]
    if unknown:
        raise ValueError(f"augment={policy!r}: unknown op(s) {unknown}; expected a comma-"
                         f"separated subset of {list(OPS)}, or '' for none")
    return ops


class Augment:
    """The policy's ops, applied in the order given, with randomness derived from the step."""

    def __init__(self, policy: str, seed: int, channels_last: bool = False,
                 shard: tuple[int, int] = (0, 1)):
        self.ops, self.seed = parse_policy(policy), seed
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.rank, self.world = shard  # under DDP: x is slice ``rank`` of ``world`` equal ones

    def __bool__(self) -> bool:
        return bool(self.ops)

    def __call__(self, x: torch.Tensor, step: int, call: int) -> torch.Tensor:
        """Augment the batch ``x`` [B, 1, S, S] for D evaluation ``call`` (a ``CALL_*``) of ``step``.

        Under DDP the parameters are drawn for the whole global batch and this rank keeps the
        rows of its slice, so every image is transformed as in one process.
        """
        if not self.ops:
            return x
        g = torch.Generator(device=x.device)
        g.manual_seed(derived_seed(self.seed, STREAM_AUGMENT, step * CALLS + call))
        b = x.shape[0]
        draw = _Draws(g, x.device, b * self.world, slice(self.rank * b, (self.rank + 1) * b))
        for op in self.ops:
            x = _OPS[op](x, draw)
        return x.contiguous(memory_format=self.memory_format)  # the layout D trains in


NO_AUGMENT = Augment("", seed=0)  # every batch as it is: train_step's default


class _Draws:
    """Random parameters, one per image of the global batch of ``total``; ``rows`` are ours."""

    def __init__(self, g: torch.Generator, device: torch.device, total: int, rows: slice):
        self.g, self.device, self.total, self.rows = g, device, total, rows

    def uniform(self, x: torch.Tensor) -> torch.Tensor:
        """One uniform [0, 1) draw per image, shaped [B, 1, 1, 1] to broadcast."""
        u = torch.rand(self.total, 1, 1, 1, device=self.device, generator=self.g)
        return u[self.rows].to(x.dtype)

    def integers(self, low: int, high: int) -> torch.Tensor:
        """One integer in [low, high) per image, shaped [B, 1, 1]."""
        k = torch.randint(low, high, (self.total, 1, 1), device=self.device, generator=self.g)
        return k[self.rows]


def brightness(x: torch.Tensor, draw: _Draws) -> torch.Tensor:
    return (x + (draw.uniform(x) - 0.5)).clamp(-1, 1)


def contrast(x: torch.Tensor, draw: _Draws) -> torch.Tensor:
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return ((x - mean) * (draw.uniform(x) + 0.5) + mean).clamp(-1, 1)


def translation(x: torch.Tensor, draw: _Draws, ratio: float = 1 / 8) -> torch.Tensor:
    """Integer shifts in [-S/8, S/8]: a gather from the image padded with black, so gradients
    reach every pixel that stays in view."""
    b, _, h, w = x.shape
    r = max(1, round(h * ratio))
    dy, dx = (draw.integers(-r, r + 1) for _ in "yx")
    ys = (torch.arange(h, device=x.device).view(1, h, 1) + dy + r).expand(b, h, w)
    xs = (torch.arange(w, device=x.device).view(1, 1, w) + dx + r).expand(b, h, w)
    padded = F.pad(x, [r, r, r, r], value=-1.0)  # [B, 1, S + 2r, S + 2r]
    rows = torch.arange(b, device=x.device).view(b, 1, 1).expand(b, h, w)
    return padded[rows, 0, ys, xs].unsqueeze(1)


def cutout(x: torch.Tensor, draw: _Draws, ratio: float = 0.5) -> torch.Tensor:
    """Zero one square of side S/2 per image (its centre anywhere, clipped at the border)."""
    b, _, h, w = x.shape
    ch, cw = max(1, round(h * ratio)), max(1, round(w * ratio))
    top = draw.integers(0, h) - ch // 2
    left = draw.integers(0, w) - cw // 2
    ys = torch.arange(h, device=x.device).view(1, h, 1)
    xs = torch.arange(w, device=x.device).view(1, 1, w)
    inside = (ys >= top) & (ys < top + ch) & (xs >= left) & (xs < left + cw)  # [B, S, S]
    return x * (~inside).unsqueeze(1).to(x.dtype)


_OPS = {"translation": translation, "cutout": cutout, "brightness": brightness,
        "contrast": contrast}
