"""One image file -> a uint8 gray square: the decoding every folder source shares.

Gray (RGB is converted, 16-bit is scaled by its own min..max range), the shorter side resized
to ``size`` keeping the aspect ratio (antialiased), then centre-cropped to ``size`` x ``size``.
Files that cannot be decoded raise :class:`UnreadableImage` with the reason, which
``data.load_dataset`` lists as skipped.

Example:
    >>> import numpy as np
    >>> resize_crop(np.full((40, 80), 200.0, dtype=np.float32), 16).shape
    (16, 16)
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torchvision.transforms.functional as TF
from PIL import Image, UnidentifiedImageError

# Pillow's own limit (~89 M pixels, ten times a 3000 x 3000 radiograph): a header that claims
# more is not decoded, so a 100-byte file cannot ask for gigabytes of memory.
MAX_PIXELS = Image.MAX_IMAGE_PIXELS or 89_478_485


class UnreadableImage(Exception):
    """A file that cannot be decoded; its message is the reason stored in ``skipped``."""


def decode_image(path: str | os.PathLike, size: int) -> tuple[np.ndarray, tuple[int, int], str]:
    """One image file -> (uint8 [size, size], (raw width, raw height), raw PIL mode).

    Raises UnreadableImage (with the reason) for empty, non-image, corrupt or truncated files.
    """
    path = Path(path)
    if path.stat().st_size == 0:
        raise UnreadableImage("empty file (0 bytes)")
    try:
        with Image.open(path) as im:
            raw_size, mode = im.size, im.mode
            if raw_size[0] * raw_size[1] > MAX_PIXELS:  # PIL only warns below twice its limit
                raise Image.DecompressionBombError(f"{raw_size[0]} x {raw_size[1]} pixels")
            # JPEG: decode straight to gray (and at 1/2 to 1/8 scale in the DCT domain where the
            # file is at least twice 2 * size). Measured 2.4x faster on 300 of the 224-px Kermany
            # copy's RGB JPEGs at size 64 (no scale reduction there; 1 thread, 2026-12-05); the
            # large originals, where the scale reduction acts, were not available to measure.
            if im.format == "JPEG":
                im.draft("L", (2 * size, 2 * size))
            im.load()
            gray = to_gray_float(im)
    except UnidentifiedImageError:
        raise UnreadableImage("not an image (PIL cannot identify the file format)") from None
    except Image.DecompressionBombError as err:  # a small file claiming a huge image
        raise UnreadableImage(f"claims more pixels than any radiograph ({err}; at most "
                              f"{MAX_PIXELS:,}): a decompression bomb, or a damaged header") from None
    except (OSError, SyntaxError, ValueError) as err:
        raise UnreadableImage(f"corrupt or truncated image ({err})") from None
    return resize_crop(gray, size), raw_size, mode


def to_gray_float(im: Image.Image) -> np.ndarray:
    """PIL image -> float32 [H, W] in 0..255. 16-bit / 32-bit gray is scaled by its own
    min..max (radiographs rarely use the full 0..65535 range); colour is converted to gray."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        a = np.asarray(im).astype(np.float32)
        lo, hi = float(a.min()), float(a.max())
        return (a - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(a)
    if im.mode != "L":
        im = im.convert("L")
    return np.asarray(im, dtype=np.float32)


def resize_crop(gray: np.ndarray, size: int) -> np.ndarray:
    """float [H, W] -> uint8 [size, size]: shorter side to ``size`` (antialiased), center crop."""
    t = torch.from_numpy(np.ascontiguousarray(gray))[None]  # [1, H, W]
    t = TF.center_crop(TF.resize(t, size, antialias=True), [size, size])
    return t[0].round().clamp(0, 255).to(torch.uint8).numpy()
