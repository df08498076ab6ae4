"""DCGAN training: the loop, logging, fixed-noise grids, snapshots and exact checkpoint/resume.

``train(cfg)`` writes the run folder of DESIGN.md (config.json, losses.jsonl, grids/,
snapshots/, checkpoint.pt) under ``config.RUNS_DIR / cfg.name`` and returns it. The data set
lives on the device as one uint8 tensor; each step takes a batch by index and scales it to
[-1, 1] there. All randomness of a step (the epoch's permutation, the latents) is derived from
(seed, epoch) or (seed, step), so a resumed run repeats the uninterrupted one exactly on a CPU.

Example:
    >>> from gan_lib import config
    >>> cfg = config.make_train_config("smoke", name="demo", source="phantom")
    >>> run_dir = train(cfg, overwrite=True)                          # doctest: +SKIP
    >>> [it for it, _ in list_snapshots(run_dir)]                     # doctest: +SKIP
    [10, 20]
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from . import config, data, io, models, runinfo
from .config import TrainConfig
from .runinfo import grid_at, list_grids, list_snapshots, load_run_config  # re-exported readers

# Fields that may differ between a checkpoint and the config that resumes it: they change how
# long training goes or what is written, not the arithmetic of the steps already taken.
RESUMABLE_CHANGES = frozenset({"iterations", "snapshot_at", "checkpoint_every", "compile",
                               "device", "profile"})
CHECKPOINT_FORMAT = 1


@dataclass
class Nets:
    """The trained state. ``G``/``D`` may be torch.compile wrappers of the same parameters."""

    G: nn.Module
    D: nn.Module
    opt_G: torch.optim.Optimizer
    opt_D: torch.optim.Optimizer
    ema: nn.Module | None = None  # exponential moving average of G (grids, snapshots)
    ema_decay: float = 0.0


def build_nets(cfg: TrainConfig, device: torch.device) -> Nets:
    """Initialised G, D (DCGAN init, seeded, identical on every device) and their Adam optimisers."""
    with torch.random.fork_rng(devices=[]):  # leave the caller's global RNG untouched
        torch.manual_seed(cfg.seed)
        G = models.Generator(cfg.z_dim, cfg.g_channels, cfg.image_size)
        D = models.Discriminator(cfg.d_channels, cfg.image_size)
        G.apply(models.weights_init)
        D.apply(models.weights_init)
    fmt = torch.channels_last if cfg.channels_last else torch.contiguous_format
    G, D = G.to(device, memory_format=fmt), D.to(device, memory_format=fmt)
    ema = copy.deepcopy(G).eval().requires_grad_(False) if cfg.ema_decay > 0 else None
    betas = (cfg.beta1, cfg.beta2)
    nets = Nets(G, D, torch.optim.Adam(G.parameters(), cfg.lr, betas=betas),
                torch.optim.Adam(D.parameters(), cfg.lr, betas=betas), ema, cfg.ema_decay)
    if cfg.compile:
        nets.G, nets.D = torch.compile(G), torch.compile(D)
    return nets


def train_step(nets: Nets, real: torch.Tensor, z: torch.Tensor,
               autocast: contextlib.AbstractContextManager) -> torch.Tensor:
    """One D update and one G update; returns [loss_D, loss_G, D(x), D(G(z))] (fp32, on device).

    real: [B, 1, S, S] in [-1, 1]; z: [B, z_dim]. D maximises log D(x) + log(1 - D(G(z))),
    i.e. minimises BCE with label 1 on real and 0 on fake batches (two forward passes, so
    BatchNorm sees pure batches, as in the DCGAN paper). G minimises BCE with label 1 on its
    fakes: the non-saturating loss. D(G(z)) is measured before D's update.
    """
    G, D = nets.G, nets.D
    ones = torch.ones(real.shape[0], device=real.device)
    with autocast:
        fake = G(z)
        logit_real, logit_fake = D(real), D(fake.detach())
        loss_D = (F.binary_cross_entropy_with_logits(logit_real.float(), ones)
                  + F.binary_cross_entropy_with_logits(logit_fake.float(), torch.zeros_like(ones)))
    nets.opt_D.zero_grad(set_to_none=True)
    loss_D.backward()
    nets.opt_D.step()
    with autocast:
        loss_G = F.binary_cross_entropy_with_logits(D(fake).float(), ones)
    nets.opt_G.zero_grad(set_to_none=True)
    # Only G's gradients: D's weight gradients of this pass would be discarded anyway
    # (~25% of this backward's FLOPs). D's zero_grad above already dropped its own.
    loss_G.backward(inputs=list(models._unwrap(G).parameters()))
    nets.opt_G.step()
    if nets.ema is not None:
        _update_ema(nets.ema, models._unwrap(G), nets.ema_decay)
    d_x = torch.sigmoid(logit_real.detach().float()).mean()
    d_g_z = torch.sigmoid(logit_fake.detach().float()).mean()
    return torch.stack([loss_D.detach(), loss_G.detach(), d_x, d_g_z])  # no graph kept alive


def real_batch(images: torch.Tensor, idx: torch.Tensor, channels_last: bool = False) -> torch.Tensor:
    """uint8 images [N, 1, S, S] (on the device) at ``idx`` -> float [B, 1, S, S] in [-1, 1]."""
    real = images[idx].float().div_(127.5).sub_(1.0)
    return real.contiguous(memory_format=torch.channels_last) if channels_last else real


def step_latents(cfg: TrainConfig, step: int, noise: torch.Generator) -> torch.Tensor:
    """The latents [B, z_dim] of iteration ``step`` + 1: a function of (seed, step) only."""
    noise.manual_seed(derived_seed(cfg.seed, 2, step))
    return torch.randn(cfg.batch_size, cfg.z_dim, device=noise.device, generator=noise)


@torch.no_grad()
def _update_ema(ema: nn.Module, G: nn.Module, decay: float) -> None:
    for e, p in zip(ema.parameters(), G.parameters(), strict=True):
        e.lerp_(p, 1.0 - decay)
    for e, b in zip(ema.buffers(), G.buffers(), strict=True):  # BatchNorm statistics: copied
        e.copy_(b)


def train(cfg: TrainConfig, resume: bool = False, overwrite: bool = False) -> Path:
    """Train the DCGAN of ``cfg`` into ``config.RUNS_DIR / cfg.name``; return that folder.

    An existing run folder is an error unless ``resume=True`` (continue from checkpoint.pt,
    exactly as if never interrupted) or ``overwrite=True`` (delete it and start again); resume
    takes precedence. Settings, device and data problems are raised before anything is written.

    >>> run_dir = train(config.make_train_config("smoke", source="phantom"), overwrite=True)  # doctest: +SKIP
    """
    run_dir = config.RUNS_DIR / cfg.name
    ckpt_path = run_dir / "checkpoint.pt"
    existing = run_dir.is_dir() and any(run_dir.iterdir())
    if existing and not (resume or overwrite):
        raise FileExistsError(
            f"Run folder {run_dir} already exists. Pass resume=True (--resume) to continue it, "
            f"overwrite=True (--overwrite) to replace it, or choose another name (--run NAME).")
    resuming = resume and ckpt_path.is_file()
    if resume and existing and not resuming:
        raise FileNotFoundError(
            f"Cannot resume {run_dir}: no checkpoint.pt there (it was stopped before iteration "
            f"{cfg.checkpoint_every}). Start again with overwrite=True (--overwrite).")
    device, precision = resolve_device(cfg.device), resolve_precision(cfg.precision, cfg.device)
    ckpt = io.load_torch(ckpt_path) if resuming else None
    if ckpt is not None:
        runinfo.check_resumable(cfg, ckpt, RESUMABLE_CHANGES)
    ds = data.load_dataset(cfg.source, split="train", image_size=cfg.image_size)
    images = runinfo.select_subset(ds.images, cfg)  # uint8 [N, 1, S, S], CPU
    if ckpt is not None and ckpt["data_fingerprint"] != ds.fingerprint:
        raise ValueError(f"Cannot resume {run_dir}: the data source {cfg.source!r} now has "
                         f"fingerprint {ds.fingerprint}, the checkpoint was trained on "
                         f"{ckpt['data_fingerprint']}. Restore the data or start a new run.")
    if existing and not resuming:
        shutil.rmtree(run_dir)  # overwrite=True, checked above
    meta = runinfo.run_metadata(cfg, runinfo.describe_data(ds, len(images)), device, precision,
                                previous=run_dir / "config.json" if resuming else None)
    io.write_json(run_dir / "config.json", meta)
    nets = build_nets(cfg, device)
    step, elapsed = (_load_checkpoint(ckpt, nets, run_dir) if ckpt is not None else (0, 0.0))
    print(f"training {cfg.name!r}: {len(images):,} images of {ds.source}, on {device} "
          f"({precision}), iterations {step}..{cfg.iterations}, batch {cfg.batch_size}")
    _loop(cfg, nets, images.to(device), run_dir, step, elapsed, precision, ds.fingerprint)
    return run_dir


def _loop(cfg: TrainConfig, nets: Nets, images: torch.Tensor, run_dir: Path, step: int,
          elapsed: float, precision: str, fingerprint: str) -> None:
    """Iterations step+1..cfg.iterations; milestones flush the log first, so NaNs stop us early."""
    device, B = images.device, cfg.batch_size
    per_epoch = len(images) // B  # the last incomplete batch of each epoch is dropped
    log_every = 1 if device.type == "cpu" else 25  # fewer host syncs on a GPU
    autocast = autocast_context(precision, device)
    noise = torch.Generator(device=device)
    perm, perm_epoch, pending = None, -1, []
    bar = tqdm(total=cfg.iterations, initial=step, desc=f"train {cfg.name}", unit="it")
    t0 = time.perf_counter() - elapsed
    with open(run_dir / "losses.jsonl", "a", encoding="utf-8") as log:
        while step < cfg.iterations:
            epoch, pos = divmod(step, per_epoch)
            if epoch != perm_epoch:  # a fresh permutation of the data set for each epoch
                perm, perm_epoch = epoch_permutation(len(images), cfg.seed, epoch).to(device), epoch
            real = real_batch(images, perm[pos * B:(pos + 1) * B], cfg.channels_last)
            stats = train_step(nets, real, step_latents(cfg, step, noise), autocast)
            step += 1
            pending.append((step, epoch + 1, stats, time.perf_counter() - t0))
            last = step == cfg.iterations
            epoch_end, snap = step % per_epoch == 0 or last, step in cfg.snapshot_at or last
            ckpt = step % cfg.checkpoint_every == 0 or last
            try:
                if epoch_end or snap or ckpt or len(pending) >= log_every:
                    _flush(pending, log, bar, B)
                if epoch_end or snap or ckpt:
                    _milestones(cfg, nets, run_dir, step, per_epoch, (epoch_end, snap, ckpt),
                                precision, time.perf_counter() - t0, fingerprint)
            except FloatingPointError as err:
                bar.close()
                saved = _checkpoint_step(run_dir)
                raise FloatingPointError(
                    f"{err}. " + (f"The last good checkpoint ({run_dir / 'checkpoint.pt'}, "
                                  f"iteration {saved}) is intact." if saved else
                                  "No checkpoint had been written yet.")
                    + " Lower lr or change seed, and start again with overwrite=True.") from None
    bar.close()


def _checkpoint_step(run_dir: Path) -> int | None:
    """Iteration of the checkpoint on disk (only for messages), or None."""
    path = run_dir / "checkpoint.pt"
    return int(io.load_torch(path)["step"]) if path.is_file() else None


def _milestones(cfg: TrainConfig, nets: Nets, run_dir: Path, step: int, per_epoch: int,
                due: tuple[bool, bool, bool], precision: str, elapsed: float,
                fingerprint: str) -> None:
    """Grid, snapshot, checkpoint of ``step`` (the checkpoint last: it implies the others)."""
    grid_due, snapshot_due, checkpoint_due = due
    params = [*nets.G.parameters(), *nets.D.parameters()]
    if not all(torch.isfinite(p).all() for p in params):  # finite loss, overflowed update
        raise FloatingPointError(f"Training diverged at iteration {step}: non-finite weights "
                                 "after a finite loss (an overflowing update)")
    epoch = (step - 1) // per_epoch + 1  # 1-based, the epoch the step belongs to
    shown = nets.ema if nets.ema is not None else models._unwrap(nets.G)
    if grid_due:
        grid = models.generate(shown, cfg.grid_size, seed=cfg.seed)  # fixed noise, eval mode
        from . import plots  # matplotlib/seaborn load only when a grid is written, not on import

        plots.save_grid_png(grid, run_dir / "grids" / f"epoch_{epoch:04d}.png",
                            nrow=int(math.sqrt(cfg.grid_size)))
    if snapshot_due:
        models.save_snapshot(shown, run_dir / "snapshots" / f"G_iter_{step:06d}.pt", step,
                             ema=nets.ema is not None, run=cfg.name, precision=precision)
    if checkpoint_due:
        _save_checkpoint(run_dir / "checkpoint.pt", cfg, nets, step, per_epoch, elapsed,
                         fingerprint)


def _flush(pending: list, log: TextIO, bar: tqdm, batch_size: int) -> None:
    """Write the pending rows to losses.jsonl; stop at the first non-finite value."""
    values = torch.stack([p[2] for p in pending]).tolist()  # one host sync for all rows
    keys = ("loss_D", "loss_G", "D_x", "D_G_z")
    for (it, epoch, _, seconds), v in zip(pending, values, strict=True):
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
    bar.update(len(pending))  # redraws at most every bar.mininterval seconds
    pending.clear()


def _save_checkpoint(path: Path, cfg: TrainConfig, nets: Nets, step: int, per_epoch: int,
                     elapsed: float, fingerprint: str) -> None:
    """Everything needed to continue exactly (atomic write): mirrors :func:`_load_checkpoint`."""
    io.save_torch({
        "format": CHECKPOINT_FORMAT, "config": cfg.to_dict(), "step": step,
        # the permutation of epoch e is derived from (seed, e): position = (epoch, batch)
        "epoch": step // per_epoch, "batch_in_epoch": step % per_epoch,
        "G": models._unwrap(nets.G).state_dict(), "D": models._unwrap(nets.D).state_dict(),
        "opt_G": nets.opt_G.state_dict(), "opt_D": nets.opt_D.state_dict(),
        "ema": nets.ema.state_dict() if nets.ema is not None else None,
        "rng": {"cpu": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else []},
        "elapsed": elapsed, "data_fingerprint": fingerprint,
    }, path)


def _load_checkpoint(ckpt: dict[str, Any], nets: Nets, run_dir: Path) -> tuple[int, float]:
    """Restore ``nets`` from a checkpoint dict; drop log rows past it. Returns (step, elapsed)."""
    models._unwrap(nets.G).load_state_dict(ckpt["G"])
    models._unwrap(nets.D).load_state_dict(ckpt["D"])
    nets.opt_G.load_state_dict(ckpt["opt_G"])
    nets.opt_D.load_state_dict(ckpt["opt_D"])
    if nets.ema is not None:
        nets.ema.load_state_dict(ckpt["ema"])
    torch.set_rng_state(ckpt["rng"]["cpu"])
    if ckpt["rng"]["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(ckpt["rng"]["cuda"])
    step = int(ckpt["step"])
    log = run_dir / "losses.jsonl"
    rows = [r for r in io.read_jsonl(log) if r["iter"] <= step] if log.is_file() else []
    io.write_text(log, "".join(json.dumps(r) + "\n" for r in rows))
    return step, float(ckpt["elapsed"])


# --- devices, precision, derived randomness ---------------------------------------------------


def resolve_device(name: str) -> torch.device:
    """'auto' -> cuda when present, else cpu; an unavailable device is an error naming the key."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"device={name!r}: expected auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={name!r}: CUDA is not available here; use device='auto' or 'cpu'")
    return device


def bf16_supported(device: torch.device) -> bool:
    """Native bf16 arithmetic: CUDA (Ampere+), or a CPU with AVX512-BF16 / AMX (oneDNN)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    cpu = torch.cpu
    return any(getattr(cpu, f, lambda: False)()
               for f in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))


def resolve_precision(precision: str, device: str | torch.device = "auto") -> str:
    """'auto' -> 'bf16' where the hardware computes it natively, else 'fp32'."""
    device = resolve_device(device) if isinstance(device, str) else device
    if precision == "auto":
        return "bf16" if bf16_supported(device) else "fp32"
    return precision


def autocast_context(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast (weights and optimiser stay fp32; no loss scaling is needed for bf16)."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def derived_seed(seed: int, stream: int, k: int) -> int:
    """A 63-bit seed for item ``k`` of random ``stream`` (1 = epoch order, 2 = latents)."""
    return (seed * 0x9E3779B97F4A7C15 + stream * 0xBF58476D1CE4E5B9 + k * 0x94D049BB133111EB) % 2**63


def epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The order of the ``n`` training images in ``epoch`` (0-based), on the CPU."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(derived_seed(seed, 1, epoch)))


__all__ = ["train", "train_step", "build_nets", "Nets", "real_batch", "step_latents",
           "list_snapshots", "list_grids", "grid_at", "load_run_config", "resolve_device",
           "resolve_precision", "autocast_context", "epoch_permutation", "derived_seed",
           "bf16_supported"]
