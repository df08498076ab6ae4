"""One image file -> a uint8 gray square: the decoding every folder source shares.

Gray (RGB is converted, 16-bit is scaled by its own min..max range), then made square by one
of :data:`RESIZE_POLICIES` (antialiased resizes):

- ``crop`` (the default): the shorter side to ``size`` keeping the aspect ratio, then the
  centre ``size`` x ``size``; a wide radiograph loses its lateral edges (the lung fields'
  outer parts at the Kermany originals' median aspect ratio of 1.4).
- ``squash``: both sides to ``size``; everything is kept, anatomy is narrowed.
- ``pad``: the longer side to ``size`` keeping the aspect ratio, then letterboxed to a square
  with the image's own border value (the median of its pixels along the sides the padding
  touches), so no black or white bar is invented.

Files that cannot be decoded raise :class:`UnreadableImage` with the reason, which
``data.load_dataset`` lists as skipped. So do files whose header (read before any pixel is
decoded) asks for more work than a radiograph can: more than :data:`MAX_PIXELS` pixels, a side
under :data:`MIN_SIDE`, or a long side more than :data:`MAX_ASPECT` times the short one (the
resize would make it ``size`` x ``size * aspect``). A :class:`MemoryBudget` shared by the
threads that decode a folder bounds the memory of the files decoded at once.

Example:
    >>> import numpy as np
    >>> fit_square(np.full((40, 80), 200.0, dtype=np.float32), 16).shape
    (16, 16)
    >>> fit_square(np.full((40, 80), 200.0, dtype=np.float32), 16, "pad").shape
    (16, 16)
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
import torchvision.transforms.functional as TF
from PIL import Image, UnidentifiedImageError

from ..config import RESIZE_POLICIES  # how a non-square image becomes square

# Pillow's own limit (~89 M pixels, ten times a 3000 x 3000 radiograph): a header that claims
# more is not decoded, so a 100-byte file cannot ask for gigabytes of memory.
MAX_PIXELS = Image.MAX_IMAGE_PIXELS or 89_478_485
# Radiographs are 1 to 2 times longer than wide (the Kermany originals 1.08-1.87, 5th-95th
# percentile), long-leg and whole-spine films about 3. The shorter side is resized to ``size``,
# so the long side becomes ``size * aspect``: at most ten times the square that is kept, where a
# 50,000,000 x 1 PNG of 48 KB would ask for 819 GB. With MAX_PIXELS this also bounds each side
# (below 30,000 px). The limits are on the file, not on the crop: they hold for any resize.
MAX_ASPECT = 10
MIN_SIDE = 8  # px: a side this short holds no radiograph (and load_dataset's smallest size)
# Decoding a file takes about (bytes per raw pixel + 12) bytes per pixel at its peak (the raw
# pixels, their float32 copy and two temporaries of the 16-bit scaling); the threads of a folder
# decode together only while their sum stays under this, and a larger file decodes alone.
DECODE_MEMORY = 1 << 30


class UnreadableImage(Exception):
    """A file that cannot be decoded; its message is the reason stored in ``skipped``."""


class MemoryBudget:
    """At most ``total`` bytes of decoding in flight across threads (a weighted semaphore).

    A claim larger than ``total`` waits until nothing else is in flight and then runs alone.

    >>> budget = MemoryBudget(100)
    >>> with budget.hold(60):
    ...     budget.free
    40
    """

    def __init__(self, total: int = DECODE_MEMORY):
        self.total = int(total)
        self.free = self.total
        self._changed = threading.Condition()

    @contextlib.contextmanager
    def hold(self, nbytes: int) -> Iterator[None]:
        claim = min(max(int(nbytes), 0), self.total)
        with self._changed:
            self._changed.wait_for(lambda: self.free >= claim)
            self.free -= claim
        try:
            yield
        finally:
            with self._changed:
                self.free += claim
                self._changed.notify_all()


def decode_image(path: str | os.PathLike, size: int, budget: MemoryBudget | None = None,
                 resize: str = "crop") -> tuple[np.ndarray, tuple[int, int], str]:
    """One image file -> (uint8 [size, size], (raw width, raw height), raw PIL mode), made
    square by ``resize`` (one of :data:`RESIZE_POLICIES`).

    Raises UnreadableImage (with the reason) for empty, non-image, corrupt or truncated files,
    and for sizes no radiograph has (:func:`check_dimensions`), before decoding their pixels.
    ``budget``: shared by the threads decoding a folder, bounds their memory together.
    """
    path = Path(path)
    if path.stat().st_size == 0:
        raise UnreadableImage("empty file (0 bytes)")
    try:
        with Image.open(path) as im:  # reads the header only: the size is known, nothing decoded
            raw_size, mode = im.size, im.mode
            check_dimensions(*raw_size)
            # JPEG: decode straight to gray (and at 1/2 to 1/8 scale in the DCT domain where the
            # file is at least twice 2 * size): libjpeg then skips the colour conversion and the
            # discarded resolution instead of computing them and resizing them away.
            if im.format == "JPEG":
                im.draft("L", (2 * size, 2 * size))
            with budget.hold(decode_bytes(im)) if budget else contextlib.nullcontext():
                im.load()
                gray = to_gray_float(im)
    except PermissionError:
        raise UnreadableImage("cannot be read: permission denied (give this user read "
                              "permission: chmod u+r)") from None
    except UnidentifiedImageError:
        raise UnreadableImage("not an image (PIL cannot identify the file format)") from None
    except Image.DecompressionBombError as err:  # a small file claiming a huge image
        raise UnreadableImage(f"claims more pixels than any radiograph ({err}; at most "
                              f"{MAX_PIXELS:,}): a decompression bomb, or a damaged header") from None
    except (OSError, SyntaxError, ValueError) as err:
        raise UnreadableImage(f"corrupt or truncated image ({err})") from None
    return fit_square(gray, size, resize), raw_size, mode


def check_dimensions(width: int, height: int) -> None:
    """Refuse a header no radiograph has, before its pixels are decoded.

    >>> check_dimensions(100_000, 1)
    Traceback (most recent call last):
    ...
    gan_lib.data.imagefile.UnreadableImage: 100000 x 1 px: a side under 8 px holds no radiograph
    >>> check_dimensions(2_000, 150)
    Traceback (most recent call last):
    ...
    gan_lib.data.imagefile.UnreadableImage: 2000 x 150 px is 13.3 times longer than wide (at most 10; radiographs are 1 to 3): resized, its long side would be 13.3 times the image size
    """
    if width * height > MAX_PIXELS:  # PIL only warns below twice its limit
        raise Image.DecompressionBombError(f"{width} x {height} pixels")
    if min(width, height) < MIN_SIDE:
        raise UnreadableImage(f"{width} x {height} px: a side under {MIN_SIDE} px holds no "
                              "radiograph")
    aspect = max(width, height) / min(width, height)
    if aspect > MAX_ASPECT:
        raise UnreadableImage(
            f"{width} x {height} px is {aspect:.1f} times longer than wide (at most "
            f"{MAX_ASPECT}; radiographs are 1 to 3): resized, its long side would be "
            f"{aspect:.1f} times the image size")


def decode_bytes(im: Image.Image) -> int:
    """Peak bytes of decoding ``im`` (opened, not yet loaded) into gray float32."""
    raw = len(im.getbands()) * (2 if im.mode.startswith("I;16") else 4 if im.mode in ("I", "F")
                                else 1)
    return im.size[0] * im.size[1] * (raw + 12)


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


def fit_square(gray: np.ndarray, size: int, resize: str = "crop") -> np.ndarray:
    """float [H, W] in 0..255 -> uint8 [size, size] by the policy ``resize`` (module docstring)."""
    t = torch.from_numpy(np.ascontiguousarray(gray))[None]  # [1, H, W]
    return square_tensor(t, size, resize)[0].round().clamp(0, 255).to(torch.uint8).numpy()


def square_tensor(t: torch.Tensor, size: int, resize: str = "crop") -> torch.Tensor:
    """float [..., H, W] -> float [..., size, size] by ``resize``; every image of a batch the
    same way (the PneumoniaMNIST path resizes whole arrays).

    ``crop`` is exactly the operations every run before the option used (its fixtures and
    caches stay valid); ``pad`` fills with each image's own border value.
    """
    if resize not in RESIZE_POLICIES:
        raise ValueError(f"resize={resize!r}: expected one of {RESIZE_POLICIES} (crop: centre "
                         "square; squash: both sides to size; pad: letterbox with the border)")
    if resize == "crop":
        return TF.center_crop(TF.resize(t, size, antialias=True), [size, size])
    if resize == "squash":
        return TF.resize(t, [size, size], antialias=True)
    h, w = t.shape[-2:]
    scale = size / max(h, w)  # the longer side to size, the shorter in proportion (>= 1 px)
    nh, nw = max(1, min(size, round(h * scale))), max(1, min(size, round(w * scale)))
    inner = TF.resize(t, [nh, nw], antialias=True)
    top, left = (size - nh) // 2, (size - nw) // 2
    out = border_value(inner, padded_rows=nh < size, padded_cols=nw < size)
    out = out[..., None, None].expand(*t.shape[:-2], size, size).clone()
    out[..., top:top + nh, left:left + nw] = inner
    return out


def border_value(t: torch.Tensor, padded_rows: bool, padded_cols: bool) -> torch.Tensor:
    """float [...]: the (lower) median of each image's pixels along the sides that padding touches
    (top and bottom rows when rows are added, left and right columns when columns are), so
    the letterbox continues what the image has at its edge (a radiograph's background)."""
    edges = []
    if padded_rows:
        edges += [t[..., 0, :], t[..., -1, :]]
    if padded_cols:
        edges += [t[..., :, 0], t[..., :, -1]]
    if not edges:  # square already: nothing is padded; any value would do
        edges = [t[..., 0, :]]
    return torch.cat(edges, dim=-1).median(dim=-1).values
