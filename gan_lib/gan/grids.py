"""Image grids: uint8 images tiled into one gray picture, and the per-epoch grid PNGs.

Below plots (no matplotlib), so training writes its grids without loading a plotting stack.

Example:
    >>> import torch
    >>> grid_array(torch.zeros(4, 1, 8, 8, dtype=torch.uint8), nrow=2).shape
    (22, 22)
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from torchvision.utils import make_grid

from .. import storage


def grid_array(images: torch.Tensor, nrow: int = 8, padding: int = 2) -> np.ndarray:
    """uint8 [N, 1, H, W] -> one uint8 gray image [H', W'] tiled ``nrow`` per row."""
    if images.dtype != torch.uint8 or images.ndim != 4:
        raise ValueError(f"expected uint8 images [N, C, H, W], got {images.dtype} {tuple(images.shape)}")
    grid = make_grid(images, nrow=nrow, padding=padding, pad_value=255)  # [3, H', W'] uint8
    return grid[0].numpy()


def save_grid_png(images: torch.Tensor, path: str | os.PathLike, nrow: int = 8,
                  row_labels: list[str] | None = None, padding: int = 2) -> Path:
    """Tile uint8 images into one lossless gray PNG (atomic). Used for per-epoch grids.

    ``row_labels`` (one per grid row, e.g. a conditional run's class of each row) are written
    in a margin on the left, once at the top of each block of equal labels.
    """
    path = Path(path)
    picture = Image.fromarray(grid_array(images, nrow, padding))
    if row_labels:
        picture = _label_rows(picture, row_labels, images.shape[-2] + padding)
    with storage.atomic_path(path) as tmp:
        picture.save(tmp, format="PNG")
    return path


def _label_rows(picture: Image.Image, row_labels: list[str], row_height: int) -> Image.Image:
    """``picture`` with a white margin on the left holding each block's label."""
    font = ImageFont.load_default(size=max(10, row_height // 4))
    width = max(int(ImageDraw.Draw(picture).textlength(t, font=font)) for t in row_labels) + 12
    out = Image.new("L", (picture.width + width, picture.height), 255)
    out.paste(picture, (width, 0))
    draw = ImageDraw.Draw(out)
    for r, text in enumerate(row_labels):
        if r == 0 or text != row_labels[r - 1]:
            draw.text((6, r * row_height + 4), text, fill=0, font=font)
    return out
