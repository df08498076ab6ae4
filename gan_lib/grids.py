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
from PIL import Image
from torchvision.utils import make_grid

from . import io


def grid_array(images: torch.Tensor, nrow: int = 8, padding: int = 2) -> np.ndarray:
    """uint8 [N, 1, H, W] -> one uint8 gray image [H', W'] tiled ``nrow`` per row."""
    if images.dtype != torch.uint8 or images.ndim != 4:
        raise ValueError(f"expected uint8 images [N, C, H, W], got {images.dtype} {tuple(images.shape)}")
    grid = make_grid(images, nrow=nrow, padding=padding, pad_value=255)  # [3, H', W'] uint8
    return grid[0].numpy()


def save_grid_png(images: torch.Tensor, path: str | os.PathLike, nrow: int = 8) -> Path:
    """Tile uint8 images into one lossless gray PNG (atomic). Used for per-epoch grids."""
    path = Path(path)
    with io.atomic_path(path) as tmp:
        Image.fromarray(grid_array(images, nrow)).save(tmp, format="PNG")
    return path
