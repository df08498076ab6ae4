"""The training precision that ``precision="auto"`` means on this machine, measured.

On first use on a machine (per CPU model and flags, ISA caps, thread count, torch version and
the networks' shape: ``device.calibrated``), the DCGAN training step is timed in fp32 and in
bf16 autocast, interleaved, a few seconds in all, and bf16 is chosen only where it is faster
here. Whether bf16 may be chosen at all is the committed quality evidence's:
:data:`BF16_ALLOWED` is the verdict of ``benchmarks/results/precision_quality.json`` (bf16 and
fp32 training paired by seed, FID by the paired rule; tests/test_benchmarks.py checks that the
constant follows the file). Forcing: ``TrainConfig.precision`` "fp32" or "bf16" is used as
given and nothing is timed; ``GAN_LIB_CALIBRATE=0`` makes "auto" fp32 without timing. On CUDA,
"auto" is bf16 where the GPU computes it natively (not measured: no GPU was at hand to develop
its calibration on). Every run's config.json records the decision (``run_folder.run_metadata``).

Example:
    >>> from gan_lib import config
    >>> cfg = config.make_train_config("smoke", precision="fp32")
    >>> training_precision(cfg, torch.device("cpu"), step=None)[1]["how"]
    'forced'
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from tqdm import tqdm

from .. import device as device_lib
from ..config import TrainConfig
from ..scale import distributed
from .augment import Augment
from .trainable import build_nets

# benchmarks/results/precision_quality.json, paired.<iteration>: no iteration at which bf16's
# FID is higher than fp32's by the paired rule (95% interval above 0), so bf16 may be chosen.
BF16_ALLOWED = True
BF16_EVIDENCE = ("benchmarks/results/precision_quality.json: paired.<iteration>.ci95 (no "
                 "iteration where bf16 training's FID is higher than fp32's by the paired rule)")
PRECISIONS = ("fp32", "bf16")
ROUNDS = 3  # interleaved rounds; each times one step of every precision (median kept)

StepFn = Callable[..., torch.Tensor]  # train.train_step


def training_precision(cfg: TrainConfig, where: torch.device,
                       step: StepFn | None) -> tuple[str, dict[str, Any]]:
    """(fp32 | bf16, the decision record) for ``cfg.precision`` on ``where``.

    ``step`` is the training step to time (``train.train_step``; passed in because training
    imports this module). Under torchrun, rank 0 measures and the other ranks read its record.
    """
    if cfg.precision != "auto":
        return cfg.precision, {"how": "forced", "by": "TrainConfig.precision",
                               "chosen": {"precision": cfg.precision}}
    if where.type != "cpu":
        chosen = "bf16" if device_lib.bf16_supported(where) else "fp32"
        return chosen, {"how": "rule", "chosen": {"precision": chosen},
                        "why": "CUDA: bf16 where the GPU computes it natively (not measured)"}
    if not device_lib.calibration_enabled():
        return "fp32", {"how": "skipped", "chosen": {"precision": "fp32"},
                        "why": f"{device_lib.CALIBRATE_ENV}=0"}
    key = {"machine": device_lib.machine(where), "workload": workload(cfg)}
    with distributed.main_first():
        record = device_lib.calibrated("training", key, lambda: measure(cfg, where, step))
    chosen = record["chosen"]["precision"]
    if distributed.total(int(chosen == "bf16")) not in (0, distributed.world_size()):
        raise RuntimeError("calibration: the training processes chose different precisions; "
                           "set TrainConfig.precision (--set precision=fp32) for all of them")
    return chosen, record


# The settings that change what one training step computes (and so its speed): the key of a
# training calibration besides the machine. Schedules, names, seeds and data do not.
WORKLOAD_KEYS = ("image_size", "z_dim", "g_channels", "d_channels", "channels_last",
                 "g_upsample", "d_norm", "d_mbstd", "loss", "r1_gamma", "r1_every", "augment",
                 "ema_decay", "conditional", "g_conditioning")


def workload(cfg: TrainConfig) -> dict[str, Any]:
    """What is timed: this process's batch and the settings that shape the step.

    >>> from gan_lib import config
    >>> workload(config.make_train_config("quick"))["batch_size"]
    64
    """
    return {"batch_size": cfg.batch_size // distributed.world_size(),
            **{k: getattr(cfg, k) for k in WORKLOAD_KEYS}}


def measure(cfg: TrainConfig, where: torch.device, step: StepFn | None,
            clock: Callable[[], float] | None = None) -> dict[str, Any]:
    """Time one training step of each precision per round (after one untimed step each, which
    builds oneDNN's kernels) and choose: bf16 when :data:`BF16_ALLOWED` and faster here. bf16
    is not timed where the screen finds its convolutions too slow (``device.bf16_conv_speed``)."""
    clock = clock or time.perf_counter
    screen = device_lib.bf16_conv_speed(where)
    timed = [p for p in PRECISIONS if p == "fp32" or screen >= device_lib.BF16_SCREEN_MIN]
    batch = workload(cfg)["batch_size"]
    states = {p: _state(cfg, where, batch, p) for p in timed}
    speeds: dict[str, list[float]] = {p: [] for p in timed}
    with tqdm(total=len(timed) * (ROUNDS + 1), unit="step", leave=False,
              desc=f"calibrating this CPU (once): training step {' / '.join(timed)}",
              **distributed.progress_bar()) as bar:
        for r in range(ROUNDS + 1):  # round 0 is the untimed one
            for p, (nets, real, z, autocast, augment, labels) in states.items():
                t0 = clock()
                step(nets, real, z, autocast, augment, r, labels)
                if r:
                    speeds[p].append(batch / (clock() - t0))
                bar.update()
    candidates = [_candidate(p, speeds.get(p), screen) for p in PRECISIONS]
    best = device_lib.fastest_within_bound(candidates)
    return {"candidates": candidates, "chosen": {"precision": best["precision"]},
            "rule": "the fastest precision that the quality evidence allows",
            "rounds": ROUNDS, "bf16_screen": {"conv_bf16_over_fp32": round(screen, 3),
                                              "min": device_lib.BF16_SCREEN_MIN}}


def _candidate(precision: str, speeds: list[float] | None, screen: float) -> dict[str, Any]:
    if speeds is None:
        return {"name": precision, "precision": precision, "img_per_s": None,
                "within_bound": False, "why": f"not timed: its convolution ran at "
                f"{screen:.2f}x fp32's here (screen minimum {device_lib.BF16_SCREEN_MIN})"}
    return {"name": precision, "precision": precision,
            "img_per_s": round(statistics.median(speeds), 2),
            "within_bound": precision == "fp32" or BF16_ALLOWED,
            "why": "the reference" if precision == "fp32" else BF16_EVIDENCE}


def _state(cfg: TrainConfig, where: torch.device, batch: int, precision: str) -> tuple:
    """The run's networks as build_nets makes them (eager, one process: rank 0 times alone),
    one batch of random inputs (their values do not change the step's cost) and the step's
    other arguments."""
    nets = build_nets(dataclasses.replace(cfg, compile=False), where,
                      n_classes=2 if cfg.conditional else 0, local=True)
    fmt = torch.channels_last if cfg.channels_last else torch.contiguous_format
    gen = torch.Generator().manual_seed(cfg.seed)
    real = torch.rand(batch, 1, cfg.image_size, cfg.image_size, generator=gen).mul_(2).sub_(1)
    z = torch.randn(batch, cfg.z_dim, generator=gen)
    labels = torch.randint(0, 2, (batch,), generator=gen).to(where) if cfg.conditional else None
    return (nets, real.to(where).contiguous(memory_format=fmt), z.to(where),
            device_lib.autocast_context(precision, where),
            Augment(cfg.augment, cfg.seed, cfg.channels_last), labels)


__all__ = ["training_precision", "measure", "workload", "BF16_ALLOWED", "BF16_EVIDENCE",
           "WORKLOAD_KEYS"]
