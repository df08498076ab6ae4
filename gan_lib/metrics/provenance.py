"""How a result file's numbers were made: the one provenance header of every result file.

scores.json, audit.json, protocols.json and utility.json begin with the same keys
(:data:`HEADER_KEYS`), built here by :func:`header`: the run, when, the data (description and
fingerprint), the generator's sampling rule and which weights it sampled with (G or EMA), the
feature extractor (name, weights with their SHA-256, layers, device, precision, extraction
variant and how it was chosen, ``calibration``; ``None`` where the file extracts no features,
as utility.json), threads, processes and the git commit. Each file adds its own settings and results after it.

Example:
    >>> sorted(data_record(type("D", (), {"source": "phantom", "description": "d",
    ...     "kind": "phantom", "fingerprint": "f", "images": [0] * 3, "is_synthetic": True})(),
    ...     "train"))
    ['description', 'fingerprint', 'is_synthetic', 'kind', 'n_images', 'resize', 'source', 'split']
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any

import torch

from ..gan import run_folder, sampling
from ..scale import distributed
from .feature_extractor import Extractor

HEADER_KEYS = ("run", "run_dir", "created", "data", "sampling", "generator", "extractor",
               "weights", "layers", "device", "precision", "extraction", "calibration", "threads",
               "processes", "git_commit")


def data_record(ds: Any, split: str, **extra: Any) -> dict[str, Any]:
    """The "data" entry: which images (source, description, kind, split, fingerprint, count)."""
    return {"source": ds.source, "description": ds.description, "kind": ds.kind, "split": split,
            "fingerprint": ds.fingerprint, "n_images": len(ds.images),
            "is_synthetic": bool(ds.is_synthetic), "resize": getattr(ds, "resize", "crop"),
            **extra}


def header(run_dir: str | os.PathLike, data: dict[str, Any], snapshot: str | os.PathLike,
           net: Extractor | None = None) -> dict[str, Any]:
    """The provenance header of a result file about ``run_dir``, in :data:`HEADER_KEYS` order.

    ``data`` is :func:`data_record`'s; ``snapshot`` the snapshot whose sampling rule the file
    reports (the final one); ``net`` the extractor of its features, or None when it has none.
    """
    run_dir = Path(run_dir)
    blob = sampling.read_snapshot(snapshot)
    return {
        "run": run_dir.name, "run_dir": str(run_dir),
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "data": data, "sampling": blob["sampling"]["description"],
        "generator": blob.get("weights", "G"),  # which weights the snapshot holds: G or EMA
        "extractor": net.describe() if net else None, "weights": net.weights if net else None,
        "layers": net.layers if net else None, "device": str(net.device) if net else None,
        "precision": net.precision if net else None, "extraction": net.variant if net else None,
        # how that variant was chosen: forced, by rule, or measured on this machine (calibrate)
        "calibration": net.calibration if net else None,
        "threads": torch.get_num_threads(),
        "processes": distributed.world_size(),  # torchrun ranks that shared the work
        "git_commit": run_folder.git_commit(),
    }


__all__ = ["HEADER_KEYS", "header", "data_record"]
