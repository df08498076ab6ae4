"""Resume checkpoints: everything needed to continue a run exactly, and the checks before it.

"Exactly" holds on the same device with the same thread count and CPU class
(:func:`compute_changes` says when they differ): float sums are then done in the same order.

``checkpoint.pt`` holds both networks, both optimisers, the EMA generator, the step, the RNG
states, the resolved config, the precision it was trained in and the data fingerprint.
:func:`save` and :func:`restore` mirror each other; :func:`read` refuses a file of another
format, and :func:`check_resumable` a config that would change the arithmetic of the steps taken.

Example:
    >>> from gan_lib import config
    >>> cfg = config.make_train_config("smoke", precision="fp32")
    >>> check_resumable(cfg, {"config": cfg.to_dict(), "step": 5, "precision": "fp32"}, "fp32")
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from .. import storage
from ..config import TrainConfig
from ..device import compute_context
from . import models
from .legacy import saved_config
from .run_folder import read_losses
from .trainable import Networks

FORMAT = 2  # 2: records the precision; snapshots re-estimate BatchNorm (see sampling.py)

# Settings that may differ between a checkpoint and the config that resumes it: they change how
# long training goes or what is written, not the arithmetic of the steps already taken. The
# name is where the run lives now (a copied or renamed folder resumes as itself).
# precision may change only when asked for explicitly (see check_resumable).
RESUMABLE_CHANGES = frozenset({"iterations", "snapshot_at", "checkpoint_every", "compile",
                               "device", "profile", "precision", "bn_batches", "name"})


def save(path: Path, cfg: TrainConfig, nets: Networks, step: int, batches_per_epoch: int,
         elapsed: float, precision: str, fingerprint: str, world_size: int = 1) -> None:
    """Everything needed to continue exactly (atomic write): mirrors :func:`restore`.

    ``world_size``: how many processes trained it (informative: another number may resume).
    """
    storage.save_torch({
        "format": FORMAT, "config": cfg.to_dict(), "step": step,
        # the permutation of epoch e is derived from (seed, e): position = (epoch, batch)
        "epoch": step // batches_per_epoch, "batch_in_epoch": step % batches_per_epoch,
        "G": models.unwrap(nets.G).state_dict(), "D": models.unwrap(nets.D).state_dict(),
        "opt_G": nets.opt_G.state_dict(), "opt_D": nets.opt_D.state_dict(),
        "ema": nets.ema.state_dict() if nets.ema is not None else None,
        "rng": {"cpu": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else []},
        "elapsed": elapsed, "precision": precision, "data_fingerprint": fingerprint,
        "world_size": world_size,
        "compute": compute_context(next(models.unwrap(nets.G).parameters()).device),
    }, path)


def read(path: Path) -> dict[str, Any]:
    """A checkpoint dict; a clear error for an unreadable file or another format."""
    try:
        ckpt = storage.load_torch(path)
    except Exception as err:  # truncated file, foreign pickle
        raise ValueError(f"{path} is not a readable checkpoint ({type(err).__name__}: "
                         f"{str(err)[:200]}); start the run again with overwrite=True") from None
    found = ckpt.get("format") if isinstance(ckpt, dict) else None
    if found != FORMAT:
        raise ValueError(f"{path} has checkpoint format {found}, this gan_lib reads format "
                         f"{FORMAT} ({'newer' if (found or 0) > FORMAT else 'older'} than this "
                         "version). Resume it with the gan_lib version that wrote it, or start "
                         "the run again with overwrite=True.")
    return ckpt


def restore(ckpt: dict[str, Any], nets: Networks) -> tuple[int, float]:
    """Load ``nets`` and the RNG states from a checkpoint dict; return (step, elapsed)."""
    models.unwrap(nets.G).load_state_dict(ckpt["G"])
    models.unwrap(nets.D).load_state_dict(ckpt["D"])
    nets.opt_G.load_state_dict(ckpt["opt_G"])
    nets.opt_D.load_state_dict(ckpt["opt_D"])
    if nets.ema is not None:
        nets.ema.load_state_dict(ckpt["ema"])
    torch.set_rng_state(ckpt["rng"]["cpu"])
    if ckpt["rng"]["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(ckpt["rng"]["cuda"])
    return int(ckpt["step"]), float(ckpt["elapsed"])


def log_problem(log: Path, step: int) -> str | None:
    """Why ``log`` cannot go on from a checkpoint at ``step``, or None.

    The log must hold iterations 1..``step`` once each (rows past ``step`` were written after
    the checkpoint, then killed: :func:`truncate_log` drops them). A row lost or repeated below
    the checkpoint cannot be rebuilt (the losses of those steps are gone), and resuming would
    hide the gap in Figure 2, so it is refused with what is missing.

    >>> import tempfile, json; log = Path(tempfile.mkdtemp()) / "losses.jsonl"
    >>> _ = log.write_text("".join(json.dumps({"iter": i}) + "\\n" for i in (1, 2, 5)))
    >>> log_problem(log, 5).split(": ", 1)[1].split(". ")[0]
    'it lacks iterations 3-4 of 1..5'
    """
    if not log.is_file():
        return (f"{log} is missing, but checkpoint.pt is at iteration {step}: the losses of "
                "those iterations are gone. Restore losses.jsonl (e.g. from a backup) to "
                "resume, or start the run again with overwrite=True.")
    seen = [r["iter"] for r in read_losses(log, required=("iter",)) if r["iter"] <= step]
    counts = Counter(seen)
    missing = [i for i in range(1, step + 1) if i not in counts]
    twice = sorted(i for i, c in counts.items() if c > 1 or i < 1)
    if not missing and not twice:
        return None
    what = "; ".join(filter(None, [
        f"it lacks iterations {_ranges(missing)} of 1..{step}" if missing else "",
        f"it repeats iterations {_ranges(twice)}" if twice else ""]))
    return (f"{log} does not match checkpoint.pt (iteration {step}): {what}. Those rows cannot "
            "be rebuilt, and the loss figure would hide the gap. Restore losses.jsonl (e.g. "
            "from a backup) to resume, or start the run again with overwrite=True.")


def _ranges(numbers: list[int]) -> str:
    """'3-4, 9' for [3, 4, 9] (sorted, at most ten ranges shown)."""
    spans: list[list[int]] = []
    for n in numbers:
        if spans and n == spans[-1][1] + 1:
            spans[-1][1] = n
        else:
            spans.append([n, n])
    text = [f"{a}-{b}" if b > a else f"{a}" for a, b in spans]
    return ", ".join(text[:10]) + (f" and {len(text) - 10} more" if len(text) > 10 else "")


def truncate_log(log: Path, step: int) -> None:
    """Drop the rows of ``log`` past ``step`` (written after the checkpoint, then killed).

    The whole log must be readable first (read_losses raises on a malformed middle line), so
    a log that cannot be read whole is never rewritten; :func:`log_problem` has checked the rows
    up to ``step``.
    """
    if log.is_file():
        rows = [r for r in read_losses(log, required=("iter",)) if r["iter"] <= step]
        storage.write_text(log, "".join(json.dumps(r) + "\n" for r in rows))


def differing(old: dict[str, Any], new: dict[str, Any], ignore: Iterable[str] = ()) -> list[str]:
    """The settings whose values differ between two config dicts, apart from ``ignore``.

    >>> differing({"lr": 1e-3, "seed": 0}, {"lr": 2e-4, "seed": 0})
    ['lr']
    """
    skip = set(ignore)
    return sorted(k for k in set(old) | set(new) if k not in skip and old.get(k) != new.get(k))


def check_resumable(cfg: TrainConfig, ckpt: dict[str, Any], precision: str) -> None:
    """Raise unless ``ckpt`` may continue with ``cfg`` at the resolved ``precision``.

    Settings other than RESUMABLE_CHANGES must be equal. A run trained in bf16 continues in
    fp32 (or back) only when ``cfg.precision`` names it: 'auto' resolving differently on other
    hardware would silently change the arithmetic half-way.
    """
    old, new = saved_config(ckpt), cfg.to_dict()
    changed = differing(old, new, ignore=RESUMABLE_CHANGES)
    if changed:
        diff = ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in changed)
        raise ValueError(f"Cannot resume run {cfg.name!r}: settings differ from its checkpoint "
                         f"({diff}). Resume with the original settings, or start a new run "
                         f"(another name, or overwrite=True). Only {sorted(RESUMABLE_CHANGES)} "
                         "may change.")
    if int(ckpt["step"]) > cfg.iterations:
        raise ValueError(f"iterations={cfg.iterations}: the checkpoint is already at iteration "
                         f"{ckpt['step']}; resume with iterations >= {ckpt['step']}")
    if ckpt["precision"] != precision and cfg.precision == "auto":
        raise ValueError(f"Cannot resume run {cfg.name!r}: it was trained in "
                         f"{ckpt['precision']}, and precision='auto' resolves to {precision} "
                         f"here. Pass precision={precision!r} (--set precision={precision}) to "
                         f"continue in {precision} anyway (config.json records the change), or "
                         "resume on hardware like the original.")


def compute_changes(ckpt: dict[str, Any], device: torch.device) -> str | None:
    """What differs between the threads / CPU class / device a checkpoint was written under and
    now, in words, or None. Resuming is allowed, but the float reduction order changes, so
    the rest of the run is not expected to equal an uninterrupted run bitwise."""
    before, now = ckpt.get("compute"), compute_context(device)
    if before is None:  # written before checkpoints recorded it
        return None
    changed = [f"{k} {before.get(k)} -> {now[k]}" for k in now if before.get(k) != now[k]]
    return ", ".join(changed) or None
