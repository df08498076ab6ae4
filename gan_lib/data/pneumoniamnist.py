"""PneumoniaMNIST (MedMNIST v2) files: finding (or downloading) them, and reading their arrays.

A PneumoniaMNIST ``.npz`` holds ``<split>_images`` (uint8 [N, H, W]) and ``<split>_labels``
([N, 1], 0 normal / 1 pneumonia) for train/val/test, at 28, 64, 128 or 224 px. Files are looked
for in ``data/raw``, gan_lib's cache and ``~/.medmnist``; a download through the medmnist
package is tried only when online (and never with ``GAN_LIB_OFFLINE=1``), into the cache,
never into the user's data folder. :func:`gan_lib.data.load_dataset` preprocesses and caches.

Example:
    >>> find_pneumoniamnist(64, download=False, required=False)  # doctest: +SKIP
    PosixPath('/home/me/.medmnist/pneumoniamnist_64.npz')
"""

from __future__ import annotations

import os
import socket
import warnings
import zipfile
from pathlib import Path

import numpy as np

from .. import config

SIZES = (28, 64, 128, 224)
URL = "https://zenodo.org/records/10519652"


def search_roots() -> list[Path]:
    return [config.RAW_DIR, config.CACHE_DIR / "medmnist", Path.home() / ".medmnist"]


def _medmnist_name(size: int) -> str:
    return "pneumoniamnist.npz" if size == 28 else f"pneumoniamnist_{size}.npz"


def find_pneumoniamnist(image_size: int = 64, download: bool = True,
                        required: bool = True) -> Path | None:
    """The local PneumoniaMNIST file to use: the stored size nearest above ``image_size``; else
    that size downloaded through medmnist (when online); else any other local size."""
    wanted = min([s for s in SIZES if s >= image_size] or [max(SIZES)])
    order = sorted(SIZES, key=lambda s: (s != wanted, s < image_size, abs(s - image_size)))
    local = [root / _medmnist_name(s) for s in order for root in search_roots()]
    if any(p.is_file() and _medmnist_name(wanted) == p.name for p in local):
        return next(p for p in local if p.is_file())
    if download and _online():
        dest = config.CACHE_DIR / "medmnist"  # ours, not the user's data folder
        dest.mkdir(parents=True, exist_ok=True)
        try:
            import medmnist

            medmnist.PneumoniaMNIST(split="train", download=True, size=wanted, root=str(dest))
            return dest / _medmnist_name(wanted)
        except Exception as err:  # any download failure falls through to the local files / error
            warnings.warn(f"PneumoniaMNIST download failed: {err}", stacklevel=2)
    other = next((p for p in local if p.is_file()), None)
    if other is not None or not required:
        return other
    raise FileNotFoundError(
        f"PneumoniaMNIST not found and not downloadable (offline?): put {_medmnist_name(wanted)} "
        f"(from {URL}) into {config.RAW_DIR} (or {Path.home() / '.medmnist'}), "
        "or use source='phantom'.")


def _online(host: str = "zenodo.org", timeout: float = 3.0) -> bool:
    if config.offline():
        return False
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def read_npz(path: str | os.PathLike, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 [N, H, W], labels int64 [N]) of ``split`` from a PneumoniaMNIST .npz."""
    expected = (f"a PneumoniaMNIST .npz with keys {split}_images (uint8 [N, H, W]) and "
                f"{split}_labels ([N] or [N, 1], 0 normal / 1 pneumonia)")
    try:
        z = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        raise ValueError(f"{path} cannot be read as .npz ({err}): expected {expected}") from None
    with z:
        missing = [k for k in (f"{split}_images", f"{split}_labels") if k not in z.files]
        if missing:
            raise ValueError(f"{path} has no {missing}: expected {expected}; found keys "
                             f"{sorted(z.files)}")
        images, labels = z[f"{split}_images"], z[f"{split}_labels"]
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if images.ndim != 3 or images.dtype != np.uint8 or min(images.shape) == 0:
        raise ValueError(f"{path}: {split}_images is {images.dtype} {list(images.shape)}: "
                         f"expected {expected}")
    labels = labels.reshape(-1) if labels.ndim == 2 and labels.shape[1] == 1 else labels
    if labels.shape != (len(images),) or not np.isin(labels, (0, 1)).all():
        raise ValueError(f"{path}: {split}_labels is {labels.dtype} {list(labels.shape)} for "
                         f"{len(images)} images: expected {expected}")
    return images, labels.astype(np.int64)
