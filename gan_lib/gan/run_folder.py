"""The run folder: what it records about itself (config.json), and its readers.

config.json holds the resolved settings, the data source and its fingerprint, library versions,
the git commit, and one segment per training process (a resumed run has several: where each
started, on which device, at which precision). The readers find a run's config, snapshots and
grids for every module after training (scoring, plots, notebooks). config.json and
losses.jsonl are checked on read against the types they are written with (:class:`TrainConfig`,
:class:`DataRecord`, :class:`LossRecord`): a hand-edited value is refused naming the file, the
key, the value and the type expected, before any work.

Example:
    >>> run_path("no-such-run")
    Traceback (most recent call last):
    ...
    FileNotFoundError: Run folder no-such-run not found: expected a folder written by train(); train it first, e.g. python -m gan_lib train --run NAME
"""

from __future__ import annotations

import dataclasses
import datetime
import importlib.metadata
import platform
import re
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torchvision

from .. import config, storage
from ..config import TrainConfig
from ..data import resized_note
from ..device import bf16_probe, compute_context
from ..scale import distributed
from ..typed_settings import check_record

RAW_SNAPSHOTS = "raw"  # snapshots/raw/: G's own weights beside an EMA run's snapshots


@dataclasses.dataclass(frozen=True)
class DataRecord:
    """config.json's "data" entry: what the run was trained on."""

    source: str  # load_dataset()'s argument that reloads the data
    description: str
    kind: str
    fingerprint: str
    n_images: int
    is_synthetic: bool = False
    resize: str = "crop"  # how each image was made square (runs from before it: crop)
    resized_note: str | None = None
    n_skipped: int = 0  # files of the training split left out (unreadable, too thin, ...)
    skipped: list = dataclasses.field(default_factory=list)  # [file, reason], the first 50


@dataclasses.dataclass(frozen=True)
class LossRecord:
    """One row of losses.jsonl: one iteration's losses, D's mean outputs, seconds so far."""

    iter: int
    epoch: int
    loss_D: float
    loss_G: float
    D_x: float
    D_G_z: float
    seconds: float


# What the readers of a run take from its files without a default.
REQUIRED_CONFIG = ("name", "profile", "iterations", "batch_size", "image_size")
REQUIRED_DATA = ("source", "description", "fingerprint", "n_images")
LOSS_KEYS = tuple(f.name for f in dataclasses.fields(LossRecord))


MAX_SKIPPED_LISTED = 50  # of a folder with thousands of bad files, config.json lists these


def describe_data(ds: Any, n_images: int) -> dict[str, Any]:
    """The "data" entry of config.json, from a ChestXrayData: with the files it skipped, each
    named relative to the data folder (the report lists them; no local path in it)."""
    note = resized_note(ds) if getattr(ds, "raw_sizes", None) is not None else None
    skipped = [[_relative(path, ds.source), reason] for path, reason in ds.skipped]
    return dataclasses.asdict(DataRecord(
        source=ds.source, description=ds.description, kind=ds.kind, fingerprint=ds.fingerprint,
        n_images=int(n_images), is_synthetic=bool(ds.is_synthetic),
        resize=getattr(ds, "resize", "crop"), resized_note=note,
        n_skipped=len(skipped), skipped=skipped[:MAX_SKIPPED_LISTED]))


def _relative(path: str, root: str) -> str:
    """``path`` relative to the data folder ``root`` (its file name when outside it)."""
    try:
        return str(Path(path).relative_to(root))
    except ValueError:
        return Path(path).name


def run_metadata(cfg: TrainConfig, data_info: dict[str, Any], device: torch.device,
                 precision: str, start_step: int = 0,
                 previous: Path | None = None,
                 calibration: dict[str, Any] | None = None) -> dict[str, Any]:
    """config.json of a run. On resume, ``previous`` keeps "created" and the earlier segments.

    "device", "precision" are those of the latest segment; "segments" lists every training
    launch: the iteration it started from, its device and precision, which check said the
    hardware computes bf16 natively (None: it does not), how many processes (torchrun's
    world size; "device" is rank 0's), and each process's intra-op thread count and CPU class
    (they set the float reduction order: steps repeat bitwise only where both are the same),
    and ``calibration``: how the precision was chosen (forced, or measured on this machine:
    gan/calibrate.py's record).
    """
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    segment = {"from_iteration": start_step, "started": now, "device": str(device),
               "device_name": _device_name(device), "precision": precision,
               "bf16_probe": bf16_probe(device), "git_commit": git_commit(),
               "world_size": distributed.world_size(),
               **{k: v for k, v in compute_context(device).items() if k != "device"},
               "calibration": calibration}
    old = storage.read_json(previous) if previous is not None and previous.is_file() else {}
    earlier = [s for s in old.get("segments", []) if s["from_iteration"] < start_step]
    return {
        "config": cfg.to_dict(),
        "data": data_info,
        "versions": versions(),
        "git_commit": segment["git_commit"],
        "device": segment["device"],
        "device_name": segment["device_name"],
        "precision": precision,  # resolved: fp32 or bf16 (autocast)
        "calibration": calibration,  # how "precision" was chosen (the latest segment's)
        "created": old.get("created", now),
        "segments": [*earlier, segment],
    }


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
    meta = storage.read_json(path)
    try:
        check_record(_RunFile, meta, str(path), required=("config", "data"))
        check_record(TrainConfig, meta["config"], str(path), "config", REQUIRED_CONFIG)
        check_record(DataRecord, meta["data"], str(path), "data", REQUIRED_DATA)
        for i, segment in enumerate(meta.get("segments", [])):
            check_record(_Segment, segment, str(path), f"segments[{i}]", ("from_iteration",))
    except ValueError as err:
        raise ValueError(f"{err}. config.json is written by train(): restore it, or train the "
                         "run again") from None
    if problem := _image_size_problem(path.parent, meta["config"]["image_size"]):
        raise ValueError(f"{path}: {problem}")
    # Runs written before descriptions were portable name their data folder absolutely; the
    # description is read by people (captions, the report), the source reloads the data.
    meta["data"]["description"] = storage.portable(meta["data"]["description"])
    return meta


def _image_size_problem(run_dir: Path, size: int) -> str | None:
    """Why config.json's image_size cannot be the run's: its snapshots generate another size
    (real images would be loaded at one size and compared with generated ones of another)."""
    found = _numbered(run_dir / "snapshots", r"G_iter_(\d+)\.pt")
    if not found:
        return None
    try:
        made = int(storage.load_torch(found[-1][1])["kwargs"]["image_size"])
    except Exception:  # an unreadable snapshot is reported where it is read (sampling)
        return None
    if made == size:
        return None
    return (f"config.image_size={size}, but the run's snapshots generate {made} x {made} images "
            f"({found[-1][1].name}): config.json was edited, or the snapshots are another "
            f"run's. Set image_size back to {made} (scores compare real and generated images "
            "of one size), or train the run again")


@dataclasses.dataclass(frozen=True)
class _RunFile:
    """The top level of config.json (the keys its readers use; config and data are checked
    as TrainConfig and DataRecord)."""

    device: str = "cpu"
    precision: str = "fp32"
    segments: list = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True)
class _Segment:
    from_iteration: int


def read_losses(path: str | Path, required: tuple[str, ...] = LOSS_KEYS) -> list[dict[str, Any]]:
    """The rows of a run's losses.jsonl, each checked against :class:`LossRecord` (an edited
    value is an error naming the file, row, key, value and type expected).

    >>> import tempfile; log = Path(tempfile.mkdtemp()) / "losses.jsonl"
    >>> _ = log.write_text('{"iter": 1, "loss_D": "abc"}\\n')
    >>> read_losses(log, required=("iter",))
    Traceback (most recent call last):
    ...
    ValueError: .../losses.jsonl: row 1.loss_D='abc': expected float, got str (a string). losses.jsonl is written by train(): restore it, or train the run again
    """
    rows = storage.read_jsonl(path)
    for number, row in enumerate(rows, start=1):
        try:
            check_record(LossRecord, row, str(path), f"row {number}", required)
        except ValueError as err:
            raise ValueError(f"{err}. losses.jsonl is written by train(): restore it, or train "
                             "the run again") from None
    return rows


def list_snapshots(run_dir: str | Path, raw: bool = False) -> list[tuple[int, Path]]:
    """[(iteration, snapshot path)] of a run, oldest first; an error when there is none.

    ``raw=True``: a run with an EMA generator also keeps G's own weights at each snapshot, in
    ``snapshots/raw/`` (training does not depend on the EMA, so they are the snapshots the same
    run without EMA would have written).

    >>> list_snapshots(config.RUNS_DIR / "smoke")[-1][0]              # doctest: +SKIP
    20
    """
    folder = run_path(run_dir) / "snapshots" / (RAW_SNAPSHOTS if raw else "")
    found = _numbered(folder, r"G_iter_(\d+)\.pt")
    if not found:
        raise FileNotFoundError(f"No generator snapshots in {folder}: " + (
            "only a run trained with ema_decay > 0 keeps G's raw weights beside the EMA's" if raw
            else "train (or resume) the run until its first snapshot_at milestone"))
    return found


def unfinished(run_dir: str | Path, used: int) -> str | None:
    """A note when the run's training is unfinished (``used``: the snapshot iteration that a
    score or quiz takes, its latest), else None.

    Training always writes a snapshot at its last iteration, so a run whose latest snapshot
    is before config.json's ``iterations`` was stopped (or is still training).
    """
    meta = load_run_config(run_dir)
    total, name = int(meta["config"]["iterations"]), meta["config"]["name"]
    if used >= total:
        return None
    return (f"note: run {name!r} is unfinished: its latest snapshot is iteration {used:,} of "
            f"{total:,}, and that is the one used here. To finish it first: python -m gan_lib "
            f"train --run {name} --resume (or make report RUN={name}).")


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
    batches_per_epoch = meta["data"]["n_images"] // meta["config"]["batch_size"]
    last = meta["config"]["iterations"]
    return [(epoch, min(epoch * batches_per_epoch, last), path) for epoch, path in found]


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
