"""The original files' sizes and aspect ratios, read from their headers (nothing is decoded).

Radiographs are rarely square (the Kermany originals are about 1.4 times wider than tall), and
how a pipeline makes them square changes what a generator learns and what FID compares
(``imagefile.RESIZE_POLICIES``). :func:`file_sizes` lists every image of a folder source, all
splits, by opening each file lazily (PIL reads the header, not the pixels: a few ms for
thousands of files); :func:`aspect_table` condenses that into the data summary's table.

Example:
    >>> import tempfile
    >>> from gan_lib.data.phantom import make_phantom
    >>> root = make_phantom(Path(tempfile.mkdtemp()) / "ph", n_train=4, n_test=2, n_val=2)
    >>> sizes = file_sizes(str(root))
    >>> aspect_table(sizes)[["split", "n", "aspect median"]].to_dict("records")[0]
    {'split': 'train', 'n': 4, 'aspect median': 1.0}
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
from PIL import Image

from .. import config
from . import pneumoniamnist
from .load import CLASS_NAMES, SPLITS, list_folder

WIDE, TALL = 1.05, 1 / 1.05  # aspect ratios beyond these count as wider / taller than square


def file_sizes(source: str | os.PathLike) -> pd.DataFrame:
    """One row per image file of a Kermany-layout folder (every split it has): split, class,
    width, height (pixels of the original file); files PIL cannot identify are left out.

    A PneumoniaMNIST ``.npz`` gives one row per image at the array's size; "phantom" is its
    folder under ``config.PHANTOM_DIR`` (written by the first load). "auto" must be resolved
    first (``ds.source`` is).
    """
    path = config.PHANTOM_DIR if str(source) == "phantom" else Path(source).expanduser()
    if path.suffix.lower() == ".npz":
        return _npz_sizes(path)
    rows = []
    for split in SPLITS:
        try:
            files = list_folder(path, split)
        except (FileNotFoundError, ValueError):  # a split the folder lacks (often val/)
            continue
        for file, label in files:
            size = _header_size(file)
            if size is not None:
                rows.append((split, CLASS_NAMES[label], *size))
    return pd.DataFrame(rows, columns=["split", "class", "width", "height"])


def _header_size(file: Path) -> tuple[int, int] | None:
    try:
        with Image.open(file) as im:  # lazy: the header only, no pixels decoded
            return im.size
    except (OSError, SyntaxError, ValueError):
        return None


def _npz_sizes(path: Path) -> pd.DataFrame:
    rows = []
    for split in SPLITS:
        try:
            images, labels = pneumoniamnist.read_npz(path, split)
        except (KeyError, ValueError, FileNotFoundError):
            continue
        _, h, w = images.shape
        rows += [(split, CLASS_NAMES[int(k)], w, h) for k in labels.reshape(-1)]
    return pd.DataFrame(rows, columns=["split", "class", "width", "height"])


def aspect_table(sizes: pd.DataFrame) -> pd.DataFrame:
    """Per split: files, median size, aspect ratio (width / height: 5th percentile, median,
    95th percentile) and the share wider than tall, square, and taller than wide."""
    if sizes.empty:
        return pd.DataFrame(columns=["split", "n", "median width x height", "aspect p5",
                                     "aspect median", "aspect p95", "wider", "square", "taller"])
    df = sizes.assign(aspect=sizes["width"] / sizes["height"])
    rows = []
    for split, g in df.groupby("split", sort=False):
        a = g["aspect"]
        rows.append({
            "split": split, "n": len(g),
            "median width x height": f"{g['width'].median():.0f} x {g['height'].median():.0f}",
            "aspect p5": round(float(a.quantile(0.05)), 2),
            "aspect median": round(float(a.median()), 2),
            "aspect p95": round(float(a.quantile(0.95)), 2),
            "wider": f"{(a > WIDE).mean():.0%}", "square": f"{a.between(TALL, WIDE).mean():.0%}",
            "taller": f"{(a < TALL).mean():.0%}"})
    return pd.DataFrame(rows)


__all__ = ["file_sizes", "aspect_table", "WIDE", "TALL"]
