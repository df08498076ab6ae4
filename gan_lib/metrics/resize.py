"""The FID Inception's resize to 299 px, bit for bit torch-fidelity's, in one compiled pass.

torch-fidelity resizes every batch the way TensorFlow 1.x did (bilinear, ``align_corners=False``,
no half-pixel offset: :func:`torch_fidelity.interpolate_compat_tensorflow.
interpolate_bilinear_2d_like_tensorflow1x`, method "slow"). Its code gathers the four corner
images at the output size (4 x 3 x 299 x 299 values per image) and blends them in six passes
over memory; on the 2-core CPU that took about a third of a compiled bf16 extraction batch.
No library offers this resize faster: PyTorch's own ``interpolate`` puts pixel centres half a
pixel elsewhere, which changes every FID.

:func:`resize_like_tf1` computes the same arithmetic on every output value in the same order
(the x-blend ``a + (b - a) * dx`` of the two source pixels of a row, then the y-blend of two
such rows), but blends along x at the input's height before gathering rows, so the output
size is written once. It is bit-identical to torch-fidelity's (``tests/test_metrics.py`` checks
``torch.equal`` over sizes up and down, eager and compiled: inductor keeps IEEE order, it
compiles without ``-ffp-contract`` or fast-math). :func:`compiled_resize` routes
torch-fidelity's call to a ``torch.compile`` of it while a compiled extractor runs; eager
extraction keeps torch-fidelity's own code, so the fp32 reference stays what it was.

Example:
    >>> from torch_fidelity.interpolate_compat_tensorflow import (
    ...     interpolate_bilinear_2d_like_tensorflow1x as theirs)
    >>> x = torch.arange(2 * 3 * 5 * 7, dtype=torch.float32).view(2, 3, 5, 7)
    >>> torch.equal(resize_like_tf1(x, (11, 4)), theirs(x, size=(11, 4), align_corners=False))
    True
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator

import torch
import torch_fidelity.feature_extractor_inceptionv3 as fidelity_inception
from torch_fidelity.interpolate_compat_tensorflow import (
    interpolate_bilinear_2d_like_tensorflow1x as fidelity_resize,
)

_ROUTED = False  # True while a compiled extractor runs: torch-fidelity's resize is compiled


def resize_like_tf1(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Float [N, C, H, W] -> [N, C, *size]: torch-fidelity's TF1 bilinear resize
    (``align_corners=False``), the same values bit for bit, with one write at the output size."""
    (out_h, out_w), (in_h, in_w) = size, x.shape[-2:]
    y_lo, y_hi, dy = _source_grid(in_h, out_h, x.device)
    x_lo, x_hi, dx = _source_grid(in_w, out_w, x.device)
    left = x.index_select(3, x_lo)
    rows = left + (x.index_select(3, x_hi) - left) * dx  # [N, C, H, out_w]: every source row
    top = rows.index_select(2, y_lo)
    return top + (rows.index_select(2, y_hi) - top) * dy.view(-1, 1)


def _source_grid(in_size: int, out_size: int,
                 where: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per output index: the lower and upper source index and the weight of the upper one,
    computed as torch-fidelity does (float32 position = index * (in / out), truncated)."""
    pos = torch.arange(0, out_size, 1, dtype=torch.float32, device=where)
    pos = pos * torch.tensor(in_size / out_size, dtype=torch.float32)
    lo = pos.long()
    return lo, (lo + 1).clamp_max(in_size - 1), pos - lo.float()


@functools.cache
def _compiled() -> Callable[[torch.Tensor, tuple[int, int]], torch.Tensor]:
    """torch.compile of :func:`resize_like_tf1`, one graph per input shape; made on first use
    (``torch.compile`` imports inductor: a second or so that no notebook should pay at import)."""
    return torch.compile(resize_like_tf1, dynamic=False)


@torch._dynamo.disable  # stays out of the extractor's graph: that one sees only 299 px
def _resize_call(input: torch.Tensor, size=None, scale_factor=None, align_corners=None,
                 method="slow") -> torch.Tensor:
    """torch-fidelity's resize under its own name: the compiled equivalent for the call its
    Inception makes, while :func:`compiled_resize` is on; its own code otherwise."""
    if (_ROUTED and size is not None and scale_factor is None and align_corners is False
            and method == "slow" and input.dim() == 4 and input.is_floating_point()):
        return _compiled()(input, tuple(size))
    return fidelity_resize(input, size=size, scale_factor=scale_factor,
                           align_corners=align_corners, method=method)


@contextlib.contextmanager
def compiled_resize() -> Iterator[None]:
    """While inside, torch-fidelity's Inception resizes through the compiled
    :func:`resize_like_tf1` (the first batch of each input size compiles it)."""
    global _ROUTED
    fidelity_inception.interpolate_bilinear_2d_like_tensorflow1x = _resize_call
    before, _ROUTED = _ROUTED, True
    try:
        yield
    finally:
        _ROUTED = before
