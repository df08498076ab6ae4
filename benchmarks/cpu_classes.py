"""Every CPU class on one machine: what calibration chooses there, at what speed, at what cost.

oneDNN's ``ONEDNN_MAX_CPU_ISA`` and ATen's ``ATEN_CPU_CAPABILITY`` cap the instructions their
kernels use (torch.compile's inductor follows ATen's), so one machine stands in for the CPU
classes below it. Both are read when torch loads, so each class runs in its own process
(``cpu_class.py``). A cap is a maximum, not an emulation: on a CPU without AMX tiles the
``amx`` class is the machine itself, and the JSON says so (the ISA oneDNN reports for each
class, and the machine's own class beside it). Per class:

1. the caps took effect: the ISA oneDNN reports, the convolution kernels it picks in fp32 and
   bf16, ATen's capability, and the speed of an Inception-sized bf16 convolution against fp32
   (interleaved rounds);
2. calibration as a user meets it on first use (empty calibration and inductor caches for each
   class): the DCGAN training step at the quick profile in fp32 and bf16
   (gan_lib/gan/calibrate.py) and Inception extraction on the data's calibration batch in each
   candidate variant (gan_lib/metrics/calibrate.py); their seconds, every candidate's img/s and
   deviation, and the choices;
3. the variants calibration does not time, timed the same way (fastmath folded; the compiled
   variant of the precision that lost; bf16 where calibration's screen found its convolution
   too slow to be worth timing, to show what the screen saved), so every variant has a speed;
4. the FID at the floor (Table 1's: ``--n-fake`` held-out training images against ``--n-real``
   reference images) with the chosen variant, against fp32 eager computed once by this process
   without caps (fp32 features under each cap are checked against it on the calibration batch).

The machine should be otherwise idle (two jobs on two cores slow each other several-fold).
About 30-35 minutes at 2 threads on a 2-core AVX512-BF16 CPU at the quick n pair (most of
it the floor's 3,072 images per class and bf16 timed under the AVX2 and AVX-512 caps):

    .venv/bin/python benchmarks/cpu_classes.py --source ../shared/data/chest_xray --threads 2 --json
    .venv/bin/python benchmarks/cpu_classes.py --markdown   # the docs tables, with bindings

``--quick-check`` (8 calibration images, nothing compiled) with a small ``--n-fake/--n-real``
tries the script in minutes; its numbers are not for the docs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import timing  # noqa: E402  (benchmarks/ is not a package)
from cpu_class import CLASSES, VARIANTS  # noqa: E402
from over_seeds import bound_table, cell  # noqa: E402

DEFAULT_JSON = HERE / "results" / "cpu_classes.json"
# --- the parent: the uncapped reference, then each class ---------------------------------


def uncapped(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """fp32 eager (BatchNorm separate: extraction_precision.json's reference) without caps: the
    calibration batch's features and the FID at the floor; saved for the classes."""
    import torch

    from gan_lib import config, data
    from gan_lib.metrics import calibrate, extraction, feature_extractor, frechet
    from gan_lib.metrics.variant_rule import Variant

    ds = data.load_dataset(args.source, "train", 64)
    order = data.subset_order(len(ds.images))
    if args.n_real + args.n_fake > len(ds.images):
        raise SystemExit(f"--n-real {args.n_real} + --n-fake {args.n_fake} exceed the "
                         f"{len(ds.images)} training images of {ds.description}")
    sets = {"calibration_images": calibrate.calibration_batch(ds.images),
            "reference": ds.images[order[:args.n_real]],
            "held_out": ds.images[order[args.n_real:args.n_real + args.n_fake]]}
    v = Variant("fp32", False)
    net = feature_extractor.build_extractor(config.make_score_config("quick", device="cpu",
                                                                     **v.as_dict()), v)
    with timing.Stopwatch() as watch:
        f = {k: extraction.extract_features(net, x, f"uncapped fp32: {k}", log=False)[
            net.layers["fid"]] for k, x in sets.items()}
    native = {**sets, "calibration_fp32": f["calibration_images"],
              "fid_fp32": frechet.frechet_distance(f["held_out"], f["reference"])}
    torch.save(native, workdir / "native.pt")
    return {"fid_floor": native["fid_fp32"], "seconds": round(watch.seconds, 1),
            "data": {"source": ds.source, "description": ds.description,
                     "fingerprint": ds.fingerprint, "n_images": len(ds.images)},
            "weights_sha256": net.weights["sha256"]}


def run_class(name: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """This script with ``--child name`` under the class's caps, cold caches; its JSON."""
    out = workdir / f"{name}.json"
    env = {**os.environ, **CLASSES[name], "OMP_NUM_THREADS": str(args.threads),
           "TORCHINDUCTOR_CACHE_DIR": str(workdir / f"inductor-{name}"), "GAN_LIB_CALIBRATE": "1"}
    cmd = [sys.executable, str(HERE / "cpu_class.py"), name, "--workdir", str(workdir), "--out",
           str(out), "--threads", str(args.threads), *(["--quick-check"] if args.quick_check
                                                        else [])]
    with timing.Stopwatch() as watch:
        done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"class {name} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return {**json.loads(out.read_text(encoding="utf-8")), "seconds": round(watch.seconds, 1)}


def machine() -> dict[str, Any]:
    """The real machine: CPU model, its own class and flags, threads available."""
    import torch

    from gan_lib import device

    return {"cpu_model": device.cpu_model(), "cpu_isa": device.cpu_isa(),
            "amx_tiles": bool(torch.cpu._is_amx_tile_supported()),
            "avx512_bf16": bool(torch.cpu._is_avx512_bf16_supported()),
            "aten_capability": torch.backends.cpu.get_cpu_capability(),
            "cpu_count": os.cpu_count(), **device.machine(torch.device("cpu"))["isa_caps"]}


def measure(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from gan_lib import storage
    from gan_lib.gan import run_folder
    from gan_lib.metrics import calibrate

    torch.set_num_threads(args.threads)
    if args.quick_check:
        calibrate.CALIBRATION_IMAGES = 8
    stopwatch = timing.Stopwatch().start()
    with tempfile.TemporaryDirectory(prefix="cpu-classes-") as tmp:
        workdir = Path(tmp)
        reference = uncapped(args, workdir)
        classes = {}
        for name in args.classes:
            print(f"class {name} ...", flush=True)
            classes[name] = run_class(name, args, workdir)
            print(summary(name, classes[name]), flush=True)
    result = {
        "what": "calibration and speed of every CPU class (oneDNN / ATen caps) on one machine",
        "machine": machine(), "threads": args.threads, "quick_check": args.quick_check,
        "n_fake": args.n_fake, "n_real": args.n_real, "uncapped_fp32": reference,
        "feature_bound": calibrate.FEATURE_BOUND, "classes": classes,
        "load_average": timing.load_average(), "git_commit": run_folder.git_commit(),
        "versions": run_folder.versions(),
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "seconds": round(stopwatch.elapsed, 1),
        "command": " ".join(["benchmarks/cpu_classes.py", *sys.argv[1:]])}
    if args.json:
        storage.write_json(Path(args.json), storage.portable(result))
    return result


def summary(name: str, r: dict[str, Any]) -> str:
    e, t = r["extraction"], r["training"]
    return (f"  {name}: oneDNN '{r['onednn']['isa']}', bf16 conv {r['conv_bf16_over_fp32']}x "
            f"fp32; training {t['img_per_s']} -> {t['chosen']}; extraction "
            f"{ {k: c['img_per_s'] for k, c in e['candidates'].items()} } -> {e['chosen']} "
            f"(calibration {t['seconds'] + e['seconds']:.0f} s); floor FID change "
            f"{r['floor']['fid_change']:+.4f}")


def markdown(result: dict[str, Any]) -> str:
    """The docs tables of a cpu_classes.json, every number bound to its field."""
    file = "cpu_classes.json"
    rows = []
    for name, r in result["classes"].items():
        at = f"classes.{name}"
        rows.append((name, [
            (f"{name} ({r['caps']['ONEDNN_MAX_CPU_ISA']})", "-"), (r["onednn"]["isa"], "-"),
            cell(f"{at}.conv_bf16_over_fp32", r["conv_bf16_over_fp32"], 2),
            *(speed(f"{at}.training.img_per_s.{p}", r["training"]["img_per_s"][p])
              for p in ("fp32", "bf16")),
            (r["training"]["chosen"], "-"),
            cell(f"{at}.training.seconds + {at}.extraction.seconds",
                 r["training"]["seconds"] + r["extraction"]["seconds"], 0)]))
    first = bound_table(file, ["class (oneDNN cap)", "ISA oneDNN reports", "bf16 / fp32 conv",
                               "training fp32 img/s", "training bf16 img/s", "chosen",
                               "calibration s"], rows)
    rows = []
    for name, r in result["classes"].items():
        at, e = f"classes.{name}.extraction", r["extraction"]
        rows.append((name, [(name, "-"), *(
            speed(f"{at}.candidates[{k}].img_per_s", e["candidates"].get(k, {}).get("img_per_s"))
            for k in VARIANTS),
            (e["chosen"], "-"),
            (f"{r['floor']['fid_change']:.2g}", f"classes.{name}.floor.fid_change")]))
    second = bound_table(file, ["class", *VARIANTS, "chosen", "FID change at the floor"], rows)
    return first + "\n\n" + second


def speed(expr: str, value: float | None) -> tuple[str, str]:
    return ("not timed", "-") if value is None else cell(expr, value, 1)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--source", default="auto", help="real images (a Kermany folder)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--classes", type=lambda s: s.split(","), default=list(CLASSES),
                   help=f"comma-separated, of {', '.join(CLASSES)}")
    p.add_argument("--n-fake", type=int, default=1024, help="held-out images at the floor")
    p.add_argument("--n-real", type=int, default=2048, help="reference images at the floor")
    p.add_argument("--quick-check", action="store_true",
                   help="8 calibration images, nothing compiled: try the script, not for docs")
    p.add_argument("--json", nargs="?", const=str(DEFAULT_JSON), help="write the result here")
    p.add_argument("--markdown", nargs="?", const=str(DEFAULT_JSON),
                   help="print the docs tables of this JSON; compute nothing")
    args = p.parse_args(argv)
    unknown = [c for c in args.classes if c not in CLASSES]
    if unknown:
        p.error(f"--classes {unknown}: expected some of {list(CLASSES)}")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.markdown:
        print(markdown(json.loads(Path(args.markdown).read_text(encoding="utf-8"))))
    else:
        measure(args)


if __name__ == "__main__":
    main()
