"""One CPU class, in its own process: benchmarks/cpu_classes.py runs this under the class's caps.

``ONEDNN_MAX_CPU_ISA`` and ``ATEN_CPU_CAPABILITY`` are read when torch loads, so the parent
sets them in this process's environment (with an empty inductor cache of the class's own) and
reads the JSON written to ``--out``: steps 1-4 of cpu_classes.py's docstring, for one class.

    python benchmarks/cpu_class.py avx2 --workdir DIR --out DIR/avx2.json --threads 2
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import timing  # noqa: E402  (benchmarks/ is not a package)

# class -> the caps that make it (ATen has no level between avx2 and avx512)
CLASSES = {
    "avx2": {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"},
    "avx512": {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE", "ATEN_CPU_CAPABILITY": "avx512"},
    "avx512_bf16": {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_BF16", "ATEN_CPU_CAPABILITY": "avx512"},
    "amx": {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_AMX", "ATEN_CPU_CAPABILITY": "avx512"},
}
VARIANTS = {  # short name -> (precision, fold_bn, compiled)
    "fp32": ("fp32", False, False), "fp32-folded": ("fp32", True, False),
    "bf16": ("bf16", False, False), "bf16-folded": ("bf16", True, False),
    "fastmath-folded": ("fastmath", True, False),
    "fp32-folded-compiled": ("fp32", True, True), "bf16-compiled": ("bf16", False, True),
}
PROBE = """
import torch
x = torch.randn(4, 64, 35, 35).contiguous(memory_format=torch.channels_last)
w = torch.randn(64, 64, 3, 3).contiguous(memory_format=torch.channels_last)
with torch.backends.mkldnn.verbose(torch.backends.mkldnn.VERBOSE_ON):
    torch.nn.functional.conv2d(x, w, padding=1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        torch.nn.functional.conv2d(x, w, padding=1)
"""


def short(precision: str, fold_bn: bool, compiled: bool) -> str:
    """A variant's key in the JSON ('bf16-compiled', 'fp32-folded', ...)."""
    return next(k for k, v in VARIANTS.items() if v == (precision, fold_bn, compiled))


def onednn_probe() -> dict[str, Any]:
    """What oneDNN says under the caps in force: its ISA, and the kernel of an fp32 and of a
    bf16 convolution (its verbose output, from a small child process)."""
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                         check=True).stdout
    isa = re.search(r"isa:(.*)", out)
    convs = [line.split(",") for line in out.splitlines() if ",exec,cpu,convolution," in line]
    return {"isa": isa.group(1).strip() if isa else None,
            "convolution_kernels": {("bf16" if ":bf16:" in ",".join(f) else "fp32"): f[5]
                                    for f in convs}}


def conv_ratio(rounds: int = 5) -> float:
    """bf16 autocast over fp32 speed of one Inception-sized convolution (192 -> 192 channels,
    3x3, 35x35, batch 16, channels_last), interleaved rounds."""
    import torch

    x = torch.randn(16, 192, 35, 35).contiguous(memory_format=torch.channels_last)
    w = torch.randn(192, 192, 3, 3).contiguous(memory_format=torch.channels_last)

    def bf16():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return torch.nn.functional.conv2d(x, w, padding=1)

    r = timing.interleaved({"fp32": lambda: torch.nn.functional.conv2d(x, w, padding=1),
                            "bf16": bf16}, rounds=rounds)
    return round(r.ratio("bf16", "fp32"), 3)


def child(args: argparse.Namespace) -> None:
    """One class: steps 1-4 of the module's docstring, written to ``--out``."""
    import torch

    from gan_lib import config, device
    from gan_lib.gan import train
    from gan_lib.metrics import calibrate, feature_extractor, variant_rule

    torch.set_num_threads(args.threads)
    device.calibration_dir = lambda: Path(args.workdir) / f"calibration-{args.child}"
    if args.quick_check:
        calibrate.CALIBRATION_IMAGES, calibrate.EAGER_BATCH = 8, 4
        calibrate.cxx_compiler = variant_rule.cxx_compiler = lambda: None
    native = torch.load(Path(args.workdir) / "native.pt", weights_only=True)
    out: dict[str, Any] = {"caps": CLASSES[args.child], "threads": torch.get_num_threads(),
                           "aten_capability": torch.backends.cpu.get_cpu_capability(),
                           "onednn": onednn_probe(), "conv_bf16_over_fp32": conv_ratio()}
    cfg = config.make_train_config("quick", device="cpu")
    precision, rec = train.training_precision(cfg)
    out["training"] = {"chosen": precision, "seconds": rec["seconds"],
                       "bf16_screen": rec["bf16_screen"]["conv_bf16_over_fp32"],
                       "img_per_s": {c["name"]: c["img_per_s"] for c in rec["candidates"]}}
    if out["training"]["img_per_s"]["bf16"] is None and not args.quick_check:
        out["training"]["img_per_s"]["bf16"] = screened_step(cfg)
    score_cfg = config.make_score_config("quick", device="cpu")
    images = native["calibration_images"]
    v, rec = feature_extractor.resolve_variant(score_cfg, calibration_images=images)
    out["extraction"] = {
        "chosen": short(v.precision, v.fold_bn, v.compiled), "chosen_label": v.label,
        "seconds": rec["seconds"], "candidates": {
            short(c["precision"], c["fold_bn"], c["compiled"]): {
                **{k: c[k] for k in ("img_per_s", "deviation", "within_bound", "compile_seconds",
                                     "vs_eager") if k in c},
                "timed_by": "calibration" if c["img_per_s"] is not None else None}
            for c in rec["candidates"]}}
    extra, out["fp32_deviation_from_uncapped"] = others(score_cfg, rec, images, native, args)
    out["extraction"]["candidates"].update(extra)
    out["floor"] = floor(score_cfg, v, native)
    Path(args.out).write_text(json.dumps(out, indent=2), encoding="utf-8")


def screened_step(cfg: Any) -> float:
    """bf16's training step where calibration's screen did not time it: timed the way
    calibration would have (one untimed, one timed round), to show what the screen saved."""
    import torch

    from gan_lib import device
    from gan_lib.gan import calibrate, train

    calibrate.ROUNDS, screen = 1, device.bf16_conv_speed
    device.bf16_conv_speed = lambda where, clock=None: 1.0
    try:
        rec = calibrate.measure(cfg, torch.device("cpu"), train.train_step)
    finally:
        device.bf16_conv_speed = screen
    return next(c["img_per_s"] for c in rec["candidates"] if c["name"] == "bf16")


def others(score_cfg: Any, rec: dict[str, Any], images: Any, native: dict[str, Any],
           args: argparse.Namespace) -> tuple[dict[str, Any], float]:
    """The variants calibration did not time, each timed as calibration times its kind: eager
    over the batch after an untimed first EAGER_BATCH images; compiled by calibration's own
    ``compiled_candidate`` (side by side with its eager self); and how far fp32's features here
    are from the uncapped fp32's."""
    import dataclasses

    import torch

    from gan_lib.metrics import calibrate, extraction, feature_extractor
    from gan_lib.metrics.variant_rule import Variant

    def pool3(net, x):
        return extraction.extract_features(net, x, progress=False, log=False)[net.layers["fid"]]

    def deviation(f):
        return float((f.double() - ref.double()).norm() / ref.double().norm())

    def build(v, batch):
        return feature_extractor.build_extractor(
            dataclasses.replace(score_cfg, batch_size=batch, **v.as_dict()), v)

    ref = native["calibration_fp32"]
    check = deviation(pool3(build(Variant("fp32", False), calibrate.EAGER_BATCH), images))
    out: dict[str, Any] = {}
    speed = {short(c["precision"], c["fold_bn"], c["compiled"]): c["img_per_s"]
             for c in rec["candidates"] if c["img_per_s"] is not None}
    for name, (precision, fold, compiled) in VARIANTS.items():  # the screen's bf16 is timed here
        if name in speed or compiled:
            continue
        net = build(Variant(precision, fold), calibrate.EAGER_BATCH)
        f0 = pool3(net, images[:calibrate.EAGER_BATCH])  # untimed, as calibration's first round
        with timing.Stopwatch() as watch:
            f = pool3(net, images[calibrate.EAGER_BATCH:])
        speed[name] = round((len(images) - calibrate.EAGER_BATCH) / watch.seconds, 2)
        out[name] = {"img_per_s": speed[name], "deviation": deviation(torch.cat([f0, f])),
                     "timed_by": "this benchmark"}
    for name, (precision, fold, compiled) in VARIANTS.items():
        if name in speed or not compiled or args.quick_check:
            continue
        eager = Variant(precision, fold)
        c = calibrate.compiled_candidate(
            {"precision": precision, "fold_bn": fold, "img_per_s": speed[short(precision, fold, False)]},
            build(eager, calibrate.EAGER_BATCH), images, score_cfg.batch_size, build, ref)
        out[name] = {**{k: c[k] for k in ("img_per_s", "deviation", "within_bound",
                                          "compile_seconds", "vs_eager") if k in c},
                     "timed_by": "this benchmark"}
    return out, check


def floor(score_cfg: Any, v: Any, native: dict[str, Any]) -> dict[str, Any]:
    """FID of the held-out set against the reference set in ``v``, beside uncapped fp32's."""
    import dataclasses

    from gan_lib.metrics import extraction, feature_extractor, frechet

    net = feature_extractor.build_extractor(dataclasses.replace(score_cfg, **v.as_dict()), v)
    with timing.Stopwatch() as watch:
        f = {k: extraction.extract_features(net, native[k], k, log=False)[net.layers["fid"]]
             for k in ("held_out", "reference")}
    fid = frechet.frechet_distance(f["held_out"], f["reference"])
    return {"fid": fid, "fid_fp32_uncapped": native["fid_fp32"],
            "fid_change": fid - native["fid_fp32"], "seconds": round(watch.seconds, 1)}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("child", choices=list(CLASSES), help="the class (its caps set by the caller)")
    p.add_argument("--workdir", required=True, help="where the parent left native.pt")
    p.add_argument("--out", required=True, help="the JSON to write")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--quick-check", action="store_true")
    child(p.parse_args(argv))


if __name__ == "__main__":
    main()
