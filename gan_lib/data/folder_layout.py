"""The Kermany layout of a data folder: ``<root>/{train,test,val}/{NORMAL,PNEUMONIA}/*.jpeg``.

:func:`list_folder` lists one split's image files with their labels, or says what is wrong
with the folder: an error whose ``reason`` (:class:`LayoutError`) names the problem without the
folder's path, for the data summary's table; an unreadable folder as a PermissionError that
says which one and what to do.

Example:
    >>> import tempfile
    >>> list_folder(Path(tempfile.mkdtemp()), "val")
    Traceback (most recent call last):
    ...
    gan_lib.data.folder_layout.LayoutError: /... is not in the Kermany layout: ...
"""

from __future__ import annotations

import os
from pathlib import Path

CLASS_NAMES = ["NORMAL", "PNEUMONIA"]
SPLITS = ("train", "val", "test")
IMAGE_EXTS = (".jpeg", ".jpg", ".png")
LAYOUT = "<root>/{train,test,val}/{NORMAL,PNEUMONIA}/*.jpeg (also .jpg/.png, any case)"


class LayoutError(ValueError):
    """A data folder that is not (or not wholly) in the Kermany layout; ``reason`` says what is
    wrong without the folder's path (for the data summary's table)."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


class SplitMissing(LayoutError, FileNotFoundError):
    """A Kermany-layout folder without the split asked for (often val/)."""


def list_folder(root: str | os.PathLike, split: str) -> list[tuple[Path, int]]:
    """(file, label) of one split of a Kermany-layout folder, sorted; hidden files ignored."""
    try:
        return _list_folder(Path(root), split)
    except PermissionError as err:  # an unreadable class folder, split or root
        raise PermissionError(f"cannot read {err.filename} ({err.strerror}): give "
                              "this user read and enter permission on the data folder (chmod "
                              "-R u+rX), or copy the data where it can be read") from None


def _list_folder(root: Path, split: str) -> list[tuple[Path, int]]:
    if not root.is_dir():
        raise FileNotFoundError(f"data folder {root} does not exist: expected {LAYOUT}. Put the "
                                "Kermany chest_xray folder there, or use source='phantom'.")
    split_dir = _child_dir(root, split)
    others = [s for s in SPLITS if s != split and _child_dir(root, s)]
    if split_dir is None and others:  # the layout, but without this split (often val/)
        reason = f"has no {split}/ folder (it has {', '.join(others)})"
        raise SplitMissing(f"{root} {reason}: this Kermany folder lacks the {split} split; add "
                           f"{split}/NORMAL and {split}/PNEUMONIA to use it", reason)
    class_dirs = [_child_dir(split_dir, name) if split_dir else None for name in CLASS_NAMES]
    if split_dir is None or None in class_dirs:
        found = sorted(p.name for p in root.iterdir() if not p.name.startswith("."))[:10]
        inner = root / "chest_xray"
        hint = f" Did you mean {inner}?" if (inner / split).is_dir() else ""
        raise LayoutError(f"{root} is not in the Kermany layout: expected {LAYOUT}, with "
                          f"{split}/NORMAL and {split}/PNEUMONIA; found {found}.{hint}",
                          f"not in the Kermany layout (no {split}/NORMAL and {split}/PNEUMONIA)")
    files = [(p, k) for k, d in enumerate(class_dirs) for p in sorted(d.iterdir())
             if not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTS and p.is_file()]
    if not files:
        raise LayoutError(f"split {split!r} of {root} is empty: no *.jpeg/*.jpg/*.png files in "
                          f"{split_dir}/NORMAL or {split_dir}/PNEUMONIA (expected {LAYOUT})",
                          f"empty: no image files in {split}/NORMAL or {split}/PNEUMONIA")
    return files


def _child_dir(parent: Path, name: str) -> Path | None:
    """The sub-folder ``name`` of ``parent`` (exact name first, then case-insensitive)."""
    if (parent / name).is_dir():
        return parent / name
    matches = [p for p in parent.iterdir() if p.is_dir() and p.name.lower() == name.lower()]
    return matches[0] if matches else None


__all__ = ["list_folder", "LayoutError", "SplitMissing", "CLASS_NAMES", "SPLITS", "IMAGE_EXTS",
           "LAYOUT"]
