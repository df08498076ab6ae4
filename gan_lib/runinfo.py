"""What a run folder records about itself (config.json), checks made before training, readers.

Helpers of :mod:`gan_lib.train`, kept apart so the training loop stays readable: the resolved
settings, the data source and its fingerprint, library versions and the git commit that
produced a run; the subset of the training images a config selects; and whether a checkpoint
may be resumed with a given config; and the readers of a finished run folder (its config,
snapshots and grids), re-exported by :mod:`gan_lib.train`.

Example:
    >>> from gan_lib import config
    >>> imgs = torch.zeros(100, 1, 8, 8, dtype=torch.uint8)
    >>> select_subset(imgs, config.make_train_config("smoke", subset=40, batch_size=8)).shape[0]
    40
"""

from __future__ import annotations

import datetime
import importlib.metadata
import platform
import re
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torchvision

from . import config, io
from .config import TrainConfig


def select_subset(images: torch.Tensor, cfg: TrainConfig) -> torch.Tensor:
    """The training images of ``cfg``: all, or ``cfg.subset`` of them in a seeded random order.

    Checks the shape the models need, and that there is at least one full batch.
    """
    n, size = len(images), cfg.image_size
    if images.dtype != torch.uint8 or tuple(images.shape[1:]) != (1, size, size):
        raise ValueError(f"load_dataset returned {images.dtype} {tuple(images.shape)}: expected "
                         f"uint8 [N, 1, {size}, {size}] for image_size={size}")
    if cfg.subset is not None:
        if cfg.subset > n:
            raise ValueError(f"subset={cfg.subset}: the data source {cfg.source!r} has only {n} "
                             "training images; lower subset or set it to None (all)")
        order = torch.randperm(n, generator=torch.Generator().manual_seed(cfg.seed))
        images = images[order[:cfg.subset]]
    if len(images) < cfg.batch_size:
        raise ValueError(f"batch_size={cfg.batch_size}: the data source {cfg.source!r} has only "
                         f"{len(images)} training images; lower batch_size")
    return images.contiguous()


def check_resumable(cfg: TrainConfig, ckpt: dict[str, Any], allowed: Iterable[str]) -> None:
    """Raise unless ``ckpt`` was trained with the same settings as ``cfg`` (except ``allowed``)."""
    old = ckpt.get("config", {})
    new = cfg.to_dict()
    changed = sorted(k for k in set(old) | set(new) if k not in allowed and old.get(k) != new.get(k))
    if changed:
        diff = ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in changed)
        raise ValueError(f"Cannot resume run {cfg.name!r}: settings differ from its checkpoint "
                         f"({diff}). Resume with the original settings, or start a new run "
                         f"(another name, or overwrite=True). Only {sorted(allowed)} may change.")
    if int(ckpt["step"]) > cfg.iterations:
        raise ValueError(f"iterations={cfg.iterations}: the checkpoint is already at iteration "
                         f"{ckpt['step']}; resume with iterations >= {ckpt['step']}")


def describe_data(ds: Any, n_images: int) -> dict[str, Any]:
    """The "data" entry of config.json, from a ChestXrayData."""
    return {"source": ds.source, "spec": ds.spec, "kind": ds.kind, "fingerprint": ds.fingerprint,
            "n_images": int(n_images), "is_synthetic": bool(ds.is_synthetic)}


def run_metadata(cfg: TrainConfig, data_info: dict[str, Any], device: torch.device,
                 precision: str, previous: Path | None = None) -> dict[str, Any]:
    """config.json of a run (DESIGN.md). On resume, ``previous`` keeps "created" and a history."""
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    meta = {
        "config": cfg.to_dict(),
        "data": data_info,
        "versions": versions(),
        "git_commit": git_commit(),
        "device": str(device),
        "device_name": _device_name(device),
        "precision": precision,  # resolved: fp32 or bf16 (autocast)
        "created": now,
    }
    if previous is not None and previous.is_file():
        old = io.read_json(previous)
        meta["created"] = old.get("created", now)
        meta["resumed"] = [*old.get("resumed", []), now]
    return meta


def versions() -> dict[str, str]:
    try:
        own = importlib.metadata.version("gan_lib")
    except importlib.metadata.PackageNotFoundError:
        own = "not installed"
    return {"python": platform.python_version(), "torch": torch.__version__,
            "torchvision": torchvision.__version__, "numpy": np.__version__, "gan_lib": own}


def git_commit() -> str | None:
    """HEAD of the repository gan_lib runs from, or None (no git, not a checkout)."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=config.REPO_ROOT, text=True,
                             capture_output=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


# --- reading a run folder ---------------------------------------------------------------------


def run_path(run: str | Path) -> Path:
    """A run folder from its name under config.RUNS_DIR or a path; a clear error if missing."""
    path = Path(run)
    if not path.is_dir() and (config.RUNS_DIR / str(run)).is_dir():
        path = config.RUNS_DIR / str(run)
    if not path.is_dir():
        raise FileNotFoundError(f"Run folder {path} not found: expected a folder written by "
                                "train(); train it first, e.g. python -m gan_lib train --run NAME")
    return path


def load_run_config(run_dir: str | Path) -> dict[str, Any]:
    """The run's config.json as a dict (keys config, data, versions, git_commit, device, ...).

    >>> load_run_config(config.RUNS_DIR / "smoke")["data"]["source"]    # doctest: +SKIP
    'synthetic phantom data (gan_lib.phantom, seed 0)'
    """
    path = run_path(run_dir) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: the run folder was not written by train() "
                                "or is incomplete; train it again with overwrite=True")
    return io.read_json(path)


def list_snapshots(run_dir: str | Path) -> list[tuple[int, Path]]:
    """[(iteration, snapshot path)] of a run, oldest first; an error when there is none.

    >>> list_snapshots(config.RUNS_DIR / "smoke")[-1][0]              # doctest: +SKIP
    20
    """
    found = _numbered(run_path(run_dir) / "snapshots", r"G_iter_(\d+)\.pt")
    if not found:
        raise FileNotFoundError(f"No generator snapshots in {Path(run_dir) / 'snapshots'}: "
                                "train (or resume) the run until its first snapshot_at milestone")
    return found


def list_grids(run_dir: str | Path) -> list[tuple[int, int, Path]]:
    """[(epoch, iteration, grid PNG)] of a run's fixed-noise grids, first epoch first.

    A grid is written after each epoch and at the end (a last, partial epoch): ``iteration``
    is the iteration it shows, from config.json's batch size and image count.

    >>> list_grids(config.RUNS_DIR / "smoke")[-1][:2]                  # doctest: +SKIP
    (3, 20)
    """
    run_dir = run_path(run_dir)
    found = _numbered(run_dir / "grids", r"epoch_(\d+)\.png")
    if not found:
        raise FileNotFoundError(f"No grids in {run_dir / 'grids'}: train the run first")
    meta = load_run_config(run_dir)
    per_epoch = meta["data"]["n_images"] // meta["config"]["batch_size"]
    last = meta["config"]["iterations"]
    return [(epoch, min(epoch * per_epoch, last), path) for epoch, path in found]


def grid_at(run_dir: str | Path, fraction: float) -> tuple[int, int, Path]:
    """The grid (epoch, iteration, PNG) nearest to ``fraction`` of the run's iterations.

    >>> grid_at(config.RUNS_DIR / "smoke", 0.5)[:2]                    # doctest: +SKIP
    (1, 8)
    """
    grids = list_grids(run_dir)
    target = fraction * grids[-1][1]
    return min(grids, key=lambda g: (abs(g[1] - target), g[1]))  # ties: the earlier grid


def _numbered(folder: Path, pattern: str) -> list[tuple[int, Path]]:
    hits = [(re.fullmatch(pattern, p.name), p) for p in folder.glob("*")] if folder.is_dir() else []
    return sorted((int(m.group(1)), p) for m, p in hits if m)
