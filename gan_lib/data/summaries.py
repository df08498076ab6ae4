"""Summaries of a loaded data set for people: the text, split counts, the original files'
sizes, the note on an already-resized folder, and the data set's citation.

Loading is :mod:`gan_lib.data.load`; these only read what it returns (pandas tables for the
data notebook, text for the CLI and the run folder).

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> from gan_lib.data.phantom import make_phantom
    >>> root = make_phantom(Path(tempfile.mkdtemp()) / "ph", n_train=8, n_test=4, n_val=4)
    >>> print(summarize(load_dataset(str(root), "val", 32)).splitlines()[2])
    split:       val
"""

from __future__ import annotations

import pandas as pd
import torch

from .load import SPLITS, ChestXrayData, load_dataset


def summarize(ds: ChestXrayData) -> str:
    """Multi-line text: source, split, counts per class, image size, skipped, fingerprint."""
    n = max(len(ds), 1)
    counts = torch.bincount(ds.labels, minlength=len(ds.class_names)).tolist()
    per_class = ", ".join(f"{name} {c:,} ({100 * c / n:.1f}%)"
                          for name, c in zip(ds.class_names, counts, strict=True))
    lines = [f"data:        {ds.description}", f"kind:        {ds.kind} (source: {ds.source})",
             f"split:       {ds.split}",
             f"images:      {len(ds):,} x 1 x {ds.image_size} x {ds.image_size} uint8",
             f"resize:      {ds.resize} (how each image was made square)",
             f"per class:   {per_class}", f"skipped:     {len(ds.skipped)} file(s)"]
    lines += [f"  - {p}: {r}" for p, r in ds.skipped[:10]]
    lines += [f"  ... and {len(ds.skipped) - 10} more"] if len(ds.skipped) > 10 else []
    lines.append(f"fingerprint: {ds.fingerprint}")
    note = resized_note(ds)
    lines += [f"note:        {note}"] if note else []
    return "\n".join(lines)


KERMANY_CITATION = (
    "Kermany, Zhang, Goldbaum, \"Labeled Optical Coherence Tomography (OCT) and Chest X-Ray "
    "Images for Classification\", Mendeley Data v2 (2018), doi:10.17632/rscbjbr9sj.2, licence "
    "CC BY 4.0; Kermany et al., Cell 172(5), 2018")


def resized_note(ds: ChestXrayData) -> str | None:
    """A warning when every file of a folder has one and the same square size, else None.

    Radiographs come in many sizes and are rarely square; a folder where all are, say,
    224 x 224 was resized before it reached the project, so the aspect ratio the originals had
    (and whether it was kept) cannot be known from it.

    >>> import types
    >>> same = types.SimpleNamespace(raw_sizes=torch.tensor([[224, 224]] * 3))
    >>> resized_note(same).startswith("all 3 files are 224 x 224 px")
    True
    """
    sizes = ds.raw_sizes
    if sizes is None or len(sizes) < 2 or not bool((sizes == sizes[0]).all()):
        return None
    w, h = (int(v) for v in sizes[0])
    if w != h:
        return None
    return (f"all {len(sizes):,} files are {w} x {h} px: the images were probably resized "
            "before they reached this project, so their original size and aspect ratio are "
            "unknown (numbers made on them are not comparable with numbers made on the "
            "original files)")


def split_counts(source: str, image_size: int = 64, resize: str = "crop") -> pd.DataFrame:
    """Images per class for each split of ``source`` (a concrete source, e.g. ``ds.source``)."""
    rows = []
    for split in SPLITS:
        try:
            ds = load_dataset(source, split, image_size, resize)
        except (ValueError, FileNotFoundError) as err:
            # the reason without the folder's path (which may hold a colon, or be private)
            rows.append({"split": split, "NORMAL": 0, "PNEUMONIA": 0, "total": 0, "skipped": 0,
                         "note": getattr(err, "reason", str(err))})
            continue
        c = torch.bincount(ds.labels, minlength=2).tolist()
        rows.append({"split": split, "NORMAL": c[0], "PNEUMONIA": c[1], "total": len(ds),
                     "skipped": len(ds.skipped), "note": ""})
    return pd.DataFrame(rows)


def raw_size_stats(ds: ChestXrayData) -> pd.DataFrame:
    """The distribution of the original files' width, height and aspect ratio (width / height)
    per class (count, min, 5th percentile, median, 95th percentile, max) and their modes."""
    df = pd.DataFrame(ds.raw_sizes.numpy(), columns=["width", "height"])
    df["aspect"] = (df["width"] / df["height"]).round(3)
    df["class"] = [ds.class_names[k] for k in ds.labels.tolist()]
    df["mode"] = ds.raw_modes
    g = df.groupby("class")

    def p5(x: pd.Series) -> float:
        return float(x.quantile(0.05))

    def p95(x: pd.Series) -> float:
        return float(x.quantile(0.95))

    out = g[["width", "height", "aspect"]].agg(["min", p5, "median", p95, "max"])
    out.columns = [f"{a}_{b}" for a, b in out.columns]
    out.insert(0, "n", g.size())
    out["modes"] = g["mode"].agg(lambda m: ", ".join(f"{k} {v}" for k, v in m.value_counts().items()))
    return out.reset_index()


__all__ = ["summarize", "split_counts", "raw_size_stats", "resized_note", "KERMANY_CITATION"]
