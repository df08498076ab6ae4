"""DCGAN training: the loop, its log, and what it writes at milestones; exact resume.

``train(cfg)`` writes the run folder (config.json, losses.jsonl, grids/, snapshots/,
checkpoint.pt; see ARCHITECTURE.md) under ``config.RUNS_DIR / cfg.name`` and returns it.
Read it top to bottom: ``train()`` checks and prepares the run (``_prepare``), ``_loop()`` takes
the steps, ``train_step()`` is one step of the DCGAN paper, ``_write_milestones()`` writes grids,
snapshots and checkpoints. The extras enter where they act: DiffAugment (augment.py) on every
batch D sees, the EMA of G (trainable.update_ema) after G's update, BatchNorm re-estimation
(milestones.recalibrated_generator) before a grid or snapshot.

The data set lives on the device as one uint8 tensor; each step takes a batch by index and
scales it to [-1, 1] there. All randomness of a step (the epoch's order, the latents, the
augmentation) is derived from (seed, epoch) or (seed, step) (batches.py), so a resumed run
repeats the uninterrupted one exactly on a CPU with the same intra-op thread count and CPU class
(another changes the order of float sums: device.compute_context, recorded in config.json and
the checkpoint).

Under ``torchrun`` (see scale/distributed.py) every process runs this same loop on its slice of each
global batch: the same order and latents, sliced by rank; DDP averages the gradients and
BatchNorm normalises over the global batch, so the steps are those of one process up to the
order of floating-point reductions. Rank 0 alone writes the run folder.

Example:
    >>> from gan_lib import config
    >>> from gan_lib.gan import run_folder
    >>> cfg = config.make_train_config("smoke", name="demo", source="phantom")
    >>> run_dir = train(cfg, overwrite=True)                          # doctest: +SKIP
    >>> [it for it, _ in run_folder.list_snapshots(run_dir)]             # doctest: +SKIP
    [10, 20]
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import time
from pathlib import Path
from typing import TextIO

import torch
from tqdm import tqdm

from .. import config, data, storage
from ..config import TrainConfig
from ..device import autocast_context, resolve_device
from ..scale import distributed
from . import calibrate, checkpoint, losses, models, run_folder, run_lock, sampling
from .augment import CALL_D_FAKE, CALL_D_REAL, CALL_G_FAKE, NO_AUGMENT, Augment
from .batches import select_subset, step_latents, trained_indices
from .milestones import (
    Milestones,
    check_weights_finite,
    recalibrated_generator,
    save_grid,
    save_snapshot,
)
from .trainable import Networks, build_nets, update_ema
from .training_run import Run


def train(cfg: TrainConfig, resume: bool = False, overwrite: bool = False) -> Path:
    """Train the DCGAN of ``cfg`` into ``config.RUNS_DIR / cfg.name``; return that folder.

    An existing run folder is an error unless ``resume=True`` (continue from checkpoint.pt,
    exactly as if never interrupted) or ``overwrite=True`` (delete it and start again); resume
    takes precedence. Settings, device and data problems are raised before anything is written,
    and a new run that fails before its first checkpoint is removed again, so that a plain rerun
    starts it afresh. The run is locked for the whole call (run_lock.py): a second process
    training, scoring or resuming the same run stops with the holder's pid.

    >>> run_dir = train(config.make_train_config("smoke", source="phantom"), overwrite=True)  # doctest: +SKIP
    """
    folder = config.RUNS_DIR / cfg.name
    with run_lock.hold(folder, "train"):
        if distributed.is_main():
            for sub in ("", "grids", "snapshots", f"snapshots/{run_folder.RAW_SNAPSHOTS}"):
                storage.remove_stale_temps(folder / sub)  # left by a writer killed mid-write
        run, ckpt = _prepare(cfg, resume, overwrite)
        if run.step == cfg.iterations:
            _say(f"run {cfg.name!r} is already trained to iteration {run.step}: nothing to do")
            return run.folder
        try:
            _start(run, ckpt, existing=folder.is_dir() and any(folder.iterdir()))
            ranks = distributed.world_size()
            _say(f"training {cfg.name!r}: {len(run.images):,} images of {run.description}, on "
                 f"{run.images.device} ({run.precision}), iterations {run.step}..{cfg.iterations}"
                 f", batch {cfg.batch_size}" + (f" ({ranks} processes of {cfg.batch_size // ranks})"
                                                if ranks > 1 else ""))
            _loop(run)
        except Exception:
            if ckpt is None and distributed.is_main() and not (folder / "checkpoint.pt").exists():
                shutil.rmtree(folder, ignore_errors=True)  # nothing in it can be resumed
                _say(f"removed {folder}: the new run failed before its first checkpoint")
            raise
        distributed.barrier()  # the run folder is complete when any rank returns
    return run.folder


def _say(message: str) -> None:
    if distributed.is_main():
        print(message)


def _prepare(cfg: TrainConfig, resume: bool, overwrite: bool) -> tuple[Run, dict | None]:
    """Check everything and build (or restore) the networks; write nothing. Returns the run
    and the checkpoint it resumes (None: a new run)."""
    folder = config.RUNS_DIR / cfg.name
    ckpt_path = folder / "checkpoint.pt"
    existing = folder.is_dir() and any(folder.iterdir())
    if existing and not (resume or overwrite):
        raise FileExistsError(
            f"Run folder {folder} already exists. Pass resume=True (--resume) to continue it, "
            f"overwrite=True (--overwrite) to replace it, or choose another name (--run NAME).")
    resuming = resume and ckpt_path.is_file()
    if resume and existing and not resuming:
        raise FileNotFoundError(
            f"Cannot resume {folder}: no checkpoint.pt there (it was stopped before iteration "
            f"{cfg.checkpoint_every}). Start again with overwrite=True (--overwrite).")
    ranks = distributed.world_size()
    if cfg.batch_size % ranks:
        raise ValueError(f"batch_size={cfg.batch_size} is the global batch, split evenly among "
                         f"the {ranks} processes: use a multiple of {ranks}")
    device = resolve_device(cfg.device)
    precision, calibration = training_precision(cfg, device)
    ckpt = checkpoint.read(ckpt_path) if resuming else None
    if ckpt is not None:
        checkpoint.check_resumable(cfg, ckpt, precision)
        _say_resume_changes(cfg, ckpt, device)
    with distributed.main_first():  # rank 0 builds a missing data cache, the others read it
        ds = data.load_dataset(cfg.source, split="train", image_size=cfg.image_size,
                               resize=cfg.resize)
    images = select_subset(ds.images, cfg)  # uint8 [N, 1, S, S], CPU
    labels = ds.labels[trained_indices(len(ds.images), cfg)] if cfg.conditional else None
    if labels is not None and len(labels.unique()) < 2:
        raise ValueError(f"conditional=True: the training images of {cfg.source!r} hold "
                         f"{len(labels.unique())} class(es) of {ds.class_names}; a conditional "
                         "run needs at least two (use more images, or conditional=False)")
    classes = sampling.class_record(ds.class_names, labels) if labels is not None else None
    n_classes = len(classes["names"]) if classes else 0
    if ckpt is not None and ckpt["data_fingerprint"] != ds.fingerprint:
        raise ValueError(f"Cannot resume {folder}: the data source {cfg.source!r} now has "
                         f"fingerprint {ds.fingerprint}, the checkpoint was trained on "
                         f"{ckpt['data_fingerprint']}. Restore the data or start a new run.")
    if ckpt is not None and int(ckpt["step"]) == cfg.iterations:  # finished: reuse, write nothing
        return Run(cfg, build_nets(cfg, device, n_classes), images, folder, precision,
                   ds.fingerprint, ds.description, step=int(ckpt["step"]),
                   calibration=calibration), ckpt
    if ckpt is not None:  # a log that cannot be read whole, or lacks rows, stops here
        problem = checkpoint.log_problem(folder / "losses.jsonl", int(ckpt["step"])) \
            if distributed.is_main() else None
        if distributed.total(int(problem is not None)):
            raise ValueError(problem or "rank 0 refused the run's losses.jsonl; see its message")
    run = Run(cfg, build_nets(cfg, device, n_classes), images.to(device), folder, precision,
              ds.fingerprint, ds.description,
              labels=labels.to(device) if labels is not None else None, classes=classes,
              calibration=calibration)
    run.data_info = run_folder.describe_data(ds, len(images))
    if ckpt is not None:
        run.step, run.elapsed = checkpoint.restore(ckpt, run.nets)
    return run, ckpt


def training_precision(cfg: TrainConfig, device: torch.device | str | None = None,
                       ) -> tuple[str, dict]:
    """(fp32 | bf16, the decision record) that ``cfg.precision`` means for :func:`train_step`
    on ``device`` (default ``cfg.device``): "auto" is measured here (calibrate.py)."""
    where = device if isinstance(device, torch.device) else resolve_device(device or cfg.device)
    return calibrate.training_precision(cfg, where, train_step)


def _say_resume_changes(cfg: TrainConfig, ckpt: dict, device: torch.device) -> None:
    """Say what differs from the checkpoint's processes and compute settings (allowed)."""
    before, ranks = int(ckpt.get("world_size", 1)), distributed.world_size()
    if before != ranks:
        _say(f"resuming {cfg.name!r} with {ranks} process(es); it was trained with {before} "
             "until now. The epoch order and the latents are global, so the steps are the "
             "same up to the order of floating-point reductions.")
    changes = checkpoint.compute_changes(ckpt, device)
    if changes:
        _say(f"resuming {cfg.name!r} under other compute settings ({changes}): the steps "
             "are the same up to the order of floating-point reductions, so the rest of "
             "the run is not expected to equal an uninterrupted run bitwise")


def _start(run: Run, ckpt: dict | None, existing: bool) -> None:
    """Write the run folder's start: config.json (a new segment), the log cut to the checkpoint.

    A new run first removes an existing folder (overwrite=True, checked by _prepare).
    """
    distributed.barrier()  # every rank has checked the folder before rank 0 changes it
    if not distributed.is_main():
        return
    if ckpt is not None:
        checkpoint.truncate_log(run.folder / "losses.jsonl", run.step)
    elif existing:
        shutil.rmtree(run.folder)
    device = run.images.device
    meta = run_folder.run_metadata(run.cfg, run.data_info, device, run.precision, run.step,
                                previous=run.folder / "config.json" if ckpt is not None else None,
                                calibration=run.calibration)
    storage.write_json(run.folder / "config.json", meta)


def _loop(run: Run) -> None:
    """Iterations step+1..iterations; milestones flush the log first, so NaNs stop us early."""
    cfg, device = run.cfg, run.images.device
    log_every = 1 if device.type == "cpu" else 25  # fewer host syncs on a GPU
    autocast = autocast_context(run.precision, device)
    noise = torch.Generator(device=device)
    augment = Augment(cfg.augment, cfg.seed, cfg.channels_last,
                      shard=(distributed.rank(), distributed.world_size()))
    my_rows = distributed.shard(cfg.batch_size)  # this process's rows of every global batch
    unlogged: list[tuple] = []  # (iteration, epoch, stats on the device, seconds)
    writes_files = distributed.is_main()  # rank 0 alone writes the log and the milestones
    bar = tqdm(total=cfg.iterations, initial=run.step, desc=f"train {cfg.name}", unit="it",
               **distributed.progress_bar())
    t0 = time.perf_counter() - run.elapsed
    log_path = run.folder / "losses.jsonl" if writes_files else os.devnull
    # a full disk met by the log (or its fsync) stops training with where and how much
    with storage.space_checked(run.folder), open(log_path, "a", encoding="utf-8") as log:
        while run.step < cfg.iterations:
            epoch, real, labels = run.next_batch()
            z = step_latents(cfg, run.step, noise)[my_rows]
            stats = train_step(run.nets, real, z, autocast, augment, run.step, labels)
            stats = distributed.mean(stats)  # the same log row on every process
            run.step += 1
            unlogged.append((run.step, epoch, stats, time.perf_counter() - t0))
            pending = Milestones.after(run.step, cfg, run.batches_per_epoch)
            try:
                if any(pending) or len(unlogged) >= log_every:
                    _flush(unlogged, log, bar, cfg.batch_size)
                if pending.checkpoint and writes_files:  # the log covers every checkpointed step
                    os.fsync(log.fileno())
                if any(pending) and writes_files:
                    run.elapsed = time.perf_counter() - t0
                    _write_milestones(run, pending)
            except FloatingPointError as err:
                bar.close()
                raise _diverged(err, run.folder) from None
    bar.close()


def train_step(nets: Networks, real: torch.Tensor, z: torch.Tensor,
               autocast: contextlib.AbstractContextManager, augment: Augment = NO_AUGMENT,
               step: int = 0, labels: torch.Tensor | None = None) -> torch.Tensor:
    """One D update and one G update; returns [loss_D, loss_G, D(x), D(G(z))] (fp32, on device).

    real: [B, 1, S, S] in [-1, 1]; z: [B, z_dim]. Two forward passes through D, so BatchNorm
    sees pure batches, as in the DCGAN paper. D(x) and D(G(z)) are batch means before D's update.
    ``augment`` (DiffAugment) transforms every batch D sees, with randomness of ``step`` and of
    which of the step's three D evaluations it is. ``labels`` (a conditional run): the real
    batch's classes, which its fakes are asked for too, so D sees the same class mix in both.
    """
    G, D, objective = nets.G, nets.D, nets.objective
    r1 = objective.r1_due(step)  # R1's lazy steps: D's gradient w.r.t. the real images is needed
    ac = objective.ac_weight > 0  # AC-GAN: D also names the class of what it sees
    # (1) Update D: maximise log D(x) + log(1 - D(G(z))), i.e. minimise BCE with target 1 on the
    #     real batch and 0 on the fake batch (loss="hinge": E[max(0, 1 - D(x))] +
    #     E[max(0, 1 + D(G(z)))]; losses.py).
    with autocast:
        fake = G(z, labels)
        real_in = augment(real, step, CALL_D_REAL)
        if r1:
            real_in = real_in.detach().requires_grad_(True)
        logit_real, class_real = losses.judge(D, real_in, labels, ac)
        logit_fake = D(augment(fake.detach(), step, CALL_D_FAKE), labels)  # G is not updated here
        loss_D = losses.d_loss(logit_real.float(), logit_fake.float(), objective.loss)
        if ac:  # (1b) + the cross-entropy of D's class guess on the real images
            loss_D = loss_D + objective.ac_weight * losses.class_loss(class_real, labels)
    if r1:  # (1c) + gamma/2 E||grad_x D(x)||^2, every r1_every steps and scaled by it
        loss_D = loss_D + (objective.r1_gamma / 2 * objective.r1_every
                           * losses.r1_penalty(logit_real, real_in))
    nets.opt_D.zero_grad(set_to_none=True)
    loss_D.backward()
    nets.opt_D.step()
    # (2) Update G: maximise log D(G(z)), the non-saturating loss (log(1 - D(G(z))) would give G
    #     almost no gradient while D rejects its fakes), i.e. minimise BCE with target 1 on the
    #     fakes, scored by the updated D (loss="hinge": minimise -D(G(z))).
    with autocast:
        logit_G, class_G = losses.judge(nets.D_without_ddp, augment(fake, step, CALL_G_FAKE),
                                        labels, ac)  # D outside DDP (why: trainable.Networks)
        loss_G = losses.g_loss(logit_G.float(), objective.loss)
        if ac:  # (2b) + the fakes should be recognised as the class they were asked for
            loss_G = loss_G + objective.ac_weight * losses.class_loss(class_G, labels)
    nets.opt_G.zero_grad(set_to_none=True)
    # Only G's gradients: D is not updated here, and its weight gradients would cost ~25% of
    # this backward's FLOPs.
    loss_G.backward(inputs=list(models.unwrap(G).parameters()))
    nets.opt_G.step()
    # (3) The EMA of G's weights follows G (with ema_decay > 0; grids and snapshots show it).
    update_ema(nets, step)
    d_x = torch.sigmoid(logit_real.detach().float()).mean()
    d_g_z = torch.sigmoid(logit_fake.detach().float()).mean()
    return torch.stack([loss_D.detach(), loss_G.detach(), d_x, d_g_z])  # no graph kept alive


def _write_milestones(run: Run, pending: Milestones) -> None:
    """Grid, snapshots, checkpoint after ``run.step`` (the checkpoint last: it implies the others)."""
    check_weights_finite(run)  # no overflowed update reaches a file
    if pending.grid or pending.snapshot:  # the sampling rule: BatchNorm re-estimated on G shown
        G_shown, rule = recalibrated_generator(run)  # the EMA if on, else G
    if pending.grid:
        save_grid(run, G_shown)
    if pending.snapshot:
        save_snapshot(run, G_shown, rule)
        if run.nets.ema is not None:  # G's own weights too (snapshots/raw/): the EMA's effect
            save_snapshot(run, *recalibrated_generator(run, raw=True), raw=True)
    if pending.checkpoint:
        checkpoint.save(run.folder / "checkpoint.pt", run.cfg, run.nets, run.step,
                        run.batches_per_epoch, run.elapsed, run.precision, run.fingerprint,
                        world_size=distributed.world_size())


def _flush(unlogged: list, log: TextIO, bar: tqdm, batch_size: int) -> None:
    """Write the unlogged rows to losses.jsonl; stop at the first non-finite value."""
    values = torch.stack([row[2] for row in unlogged]).tolist()  # one host sync for all rows
    keys = ("loss_D", "loss_G", "D_x", "D_G_z")
    for (it, epoch, _, seconds), v in zip(unlogged, values, strict=True):
        if not all(math.isfinite(x) for x in v):
            log.flush()
            raise FloatingPointError(f"Training diverged at iteration {it}: " + ", ".join(
                f"{k}={x}" for k, x in zip(keys, v, strict=True)))
        row = {"iter": it, "epoch": epoch, **dict(zip(keys, v, strict=True)),
               "seconds": round(seconds, 4)}
        log.write(json.dumps(row) + "\n")
    log.flush()  # in the OS's hands: survives a killed process
    rate = bar.format_dict.get("rate")  # tqdm's smoothed iterations per second
    bar.set_postfix(loss_D=f"{values[-1][0]:.3f}", loss_G=f"{values[-1][1]:.3f}",
                    img_s=f"{rate * batch_size:.0f}" if rate else "?", refresh=False)
    bar.update(len(unlogged))  # redraws at most every bar.mininterval seconds
    unlogged.clear()


def _diverged(err: FloatingPointError, folder: Path) -> FloatingPointError:
    """The divergence message, naming the last good checkpoint on disk."""
    path = folder / "checkpoint.pt"
    saved = int(storage.load_torch(path)["step"]) if path.is_file() else None
    return FloatingPointError(
        f"{err}. " + (f"The last good checkpoint ({path}, iteration {saved}) is intact. "
                      "Lower lr or change seed, and start again with overwrite=True."
                      if saved else "No checkpoint had been written yet, so the new run "
                      "folder is removed. Lower lr or change seed, and start again."))


__all__ = ["train", "train_step", "build_nets"]
