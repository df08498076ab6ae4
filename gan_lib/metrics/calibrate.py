"""What "auto" extraction means on this machine: each candidate variant timed here, and its
features checked against fp32's on a batch of real images.

On first use on a machine (``device.calibrated``: CPU model and flags, ISA caps, threads, torch
version; and the weights, the scoring batch size and the calibration images), the calibration
batch (:data:`CALIBRATION_IMAGES` images: the first of the reference set, in
``data.subset_order``) goes through Inception in each eager candidate of :data:`EAGER` (fp32,
the reference; fp32 with BatchNorm folded; bf16 autocast; bf16 folded), in interleaved rounds of
:data:`EAGER_BATCH` images, the first round untimed. Where a C++ compiler exists, the fastest
eager candidate within the bound is then compiled (torch.compile, at the scoring batch size, so
that scoring finds inductor's kernels cached) and timed against its eager self, side by side. A candidate is within the bound when
its features deviate from fp32's, ||f - f_fp32|| / ||f_fp32|| over the batch's pool3 features,
by no more than :data:`FEATURE_BOUND`: the deviation of the variant that met the FID rule in
``benchmarks/results/extraction_precision.json`` (the largest among those that met it; every
variant that failed it deviated more). The fastest candidate within the bound is chosen
(``device.fastest_within_bound``); every score's provenance records the decision.

The bound was measured on real chest X-rays; on other images the same arithmetic can deviate
more (on the phantom, bf16 does), and the check then refuses it: the FID rule was never checked
there.
"""

from __future__ import annotations

import hashlib
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from tqdm import tqdm

from .. import device
from ..data import load_dataset, subset_order
from ..scale import distributed
from .extraction import extract_features
from .inception_weights import EXTRACTOR
from .variant_rule import Variant, cxx_compiler

# benchmarks/results/extraction_precision.json: rows[bf16-compiled].feature_relative_error, the
# largest among the rows that meet the FID rule (tests/test_benchmarks.py binds it to the file).
FEATURE_BOUND = 0.037719666957855225
BOUND_SOURCE = ("benchmarks/results/extraction_precision.json: the largest "
                "rows.<variant>.feature_relative_error among the variants that meet its FID rule")
CALIBRATION_IMAGES = 64
EAGER_BATCH = 16  # images per timed round of the eager candidates
PAIRED_ROUNDS = 2  # rounds of the compiled candidate against its eager self, after compiling
EAGER = (Variant("fp32", False), Variant("fp32", True), Variant("bf16", False),
         Variant("bf16", True))  # the first is the reference the others are compared with

Build = Callable[[Variant, int], Any]  # (variant, batch size) -> feature_extractor.Extractor


def calibration_batch(images: torch.Tensor) -> torch.Tensor:
    """The calibration images of a split: the first of its reference set (uint8 [N, 1, S, S])."""
    return images[subset_order(len(images))[:CALIBRATION_IMAGES]]


def default_images() -> torch.Tensor:
    """The calibration batch of the "auto" data source's training split at 64 px, for a caller
    that gives none (scoring, the audit and the protocols give their run's own)."""
    return calibration_batch(load_dataset("auto", "train", 64).images)


def decide(where: torch.device, batch_size: int, weights_sha256: str | None,
           images: torch.Tensor, build: Build) -> dict[str, Any]:
    """The calibration record for extraction at ``batch_size`` on ``where`` (measured once per
    key, then read from the cache). Under torchrun rank 0 measures, the others read."""
    key = {"machine": device.machine(where), "extractor": EXTRACTOR,
           "weights_sha256": weights_sha256, "batch_size": batch_size,
           "images_sha256": hashlib.sha256(images.contiguous().numpy().tobytes()).hexdigest()[:16],
           "compiler": cxx_compiler() is not None}
    with distributed.main_first():
        return device.calibrated("extraction", key,
                                 lambda: measure(images, batch_size, build))


def measure(images: torch.Tensor, batch_size: int, build: Build,
            clock: Callable[[], float] | None = None) -> dict[str, Any]:
    """Time and check every candidate (see the module's docstring); choose. bf16 candidates are
    not timed where the screen finds bf16 convolutions too slow (``device.bf16_conv_speed``)."""
    clock = clock or time.perf_counter
    screen = device.bf16_conv_speed(torch.device("cpu"))
    eager = [v for v in EAGER if v.precision != "bf16" or screen >= device.BF16_SCREEN_MIN]
    batches = list(images.split(EAGER_BATCH))
    with tqdm(total=len(eager) * len(batches) + 1 + PAIRED_ROUNDS, unit="pass", leave=False,
              desc="calibrating this CPU (once): Inception extraction",
              **distributed.progress_bar()) as bar:
        nets = {v: build(v, EAGER_BATCH) for v in eager}
        feats: dict[Variant, list[torch.Tensor]] = {v: [] for v in eager}
        seconds = dict.fromkeys(eager, 0.0)
        for r, batch in enumerate(batches):  # round 0 builds oneDNN's kernels, untimed
            for v, net in nets.items():
                t0 = clock()
                feats[v].append(_pool3(net, batch))
                seconds[v] += (clock() - t0) if r else 0.0
                bar.update()
        timed = len(images) - len(batches[0])
        ref = torch.cat(feats[EAGER[0]])
        candidates = [_candidate(v, timed / seconds[v], torch.cat(feats[v]), ref) if v in nets
                      else _screened(v, screen) for v in EAGER]
        eager_best = device.fastest_within_bound(candidates)
        if cxx_compiler() is not None:
            eager_net = nets[Variant(eager_best["precision"], eager_best["fold_bn"])]
            candidates.append(compiled_candidate(eager_best, eager_net, images, batch_size,
                                                 build, ref, clock, bar))
    best = device.fastest_within_bound(candidates)
    return {"candidates": candidates,
            "chosen": {k: best[k] for k in ("precision", "fold_bn", "compiled")},
            "rule": "the fastest candidate whose features deviate from fp32's by at most the bound",
            "bound": {"feature_relative_error": FEATURE_BOUND, "source": BOUND_SOURCE},
            "bf16_screen": {"conv_bf16_over_fp32": round(screen, 3),
                            "min": device.BF16_SCREEN_MIN},
            "images": {"n": len(images), "eager_batch": EAGER_BATCH}}


def _screened(v: Variant, screen: float) -> dict[str, Any]:
    """A bf16 candidate the screen kept from being timed."""
    return {"name": v.label, **v.as_dict(), "img_per_s": None, "deviation": None,
            "within_bound": False, "why": f"not timed: bf16 convolution ran at {screen:.2f}x "
            f"fp32's here (screen minimum {device.BF16_SCREEN_MIN})"}


def compiled_candidate(eager_best: dict[str, Any], eager_net: Any, images: torch.Tensor,
                       batch_size: int, build: Build, ref: torch.Tensor,
                       clock: Callable[[], float] | None = None,
                       bar: tqdm | None = None) -> dict[str, Any]:
    """The eager winner compiled. The first pass compiles (its seconds recorded); then
    :data:`PAIRED_ROUNDS` rounds time the eager winner and the compiled one on the whole batch,
    side by side, and the compiled one's speed is the eager winner's times their ratio (one
    load for both). A compilation that fails is a refused candidate, not an error."""
    clock, bar = clock or time.perf_counter, bar or tqdm(disable=True)
    v = Variant(eager_best["precision"], eager_best["fold_bn"], True)
    net = build(v, batch_size)
    t0 = clock()
    try:
        _pool3(net, images)
    except RuntimeError as err:
        bar.update(1 + PAIRED_ROUNDS)
        return {"name": v.label, **v.as_dict(), "img_per_s": 0.0, "deviation": None,
                "within_bound": False, "why": f"torch.compile failed: {str(err)[:200]}"}
    compile_seconds = clock() - t0
    bar.update()
    seconds: dict[str, list[float]] = {"eager": [], "compiled": []}
    for _ in range(PAIRED_ROUNDS):
        for name, n in (("eager", eager_net), ("compiled", net)):
            t0 = clock()
            feats = _pool3(n, images)
            seconds[name].append(clock() - t0)
        bar.update()
    ratio = statistics.median(seconds["eager"]) / statistics.median(seconds["compiled"])
    return {**_candidate(v, eager_best["img_per_s"] * ratio, feats, ref),
            "compile_seconds": round(compile_seconds, 1), "vs_eager": round(ratio, 3)}


def _pool3(net: Any, images: torch.Tensor) -> torch.Tensor:
    return extract_features(net, images, progress=False, log=False)[net.layers["fid"]]


def _candidate(v: Variant, img_per_s: float, feats: torch.Tensor,
               ref: torch.Tensor) -> dict[str, Any]:
    """One candidate's record: its speed here and its features' deviation from fp32's."""
    deviation = float((feats.double() - ref.double()).norm() / ref.double().norm())
    ok = deviation <= FEATURE_BOUND
    return {"name": v.label, **v.as_dict(), "img_per_s": round(img_per_s, 2),
            "deviation": deviation, "within_bound": ok,
            "why": f"deviation {deviation:.4g} {'<=' if ok else '>'} bound {FEATURE_BOUND:.4g}"}


__all__ = ["FEATURE_BOUND", "BOUND_SOURCE", "CALIBRATION_IMAGES", "EAGER", "EAGER_BATCH",
           "PAIRED_ROUNDS", "calibration_batch", "default_images", "decide", "measure",
           "compiled_candidate"]
