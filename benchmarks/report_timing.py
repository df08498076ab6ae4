"""The quick report on real X-rays from a fresh clone, timed and kept: real_quick_report.json.

Clones this repository (its committed HEAD) into an empty folder, puts the data folder given by
``--data`` at ``data/raw/chest_xray`` (a symbolic link: the loader reads it as it is), and runs
the README's commands there, timed separately: ``make .venv/.installed`` (the environment), then
``make report`` (the quick profile: training, scoring, audit, the usefulness notebook, the
protocols). Nothing is cached: the clone has its own data/cache (torch.compile's kernels and
the calibration of "auto" included) and runs/. The CPU class (model, flags, ISA caps, threads)
and both calibration decisions (training precision, extraction variant) are recorded. The report's own build.json gives each notebook's seconds and images put
through Inception. Run it on an idle machine (the numbers are wall time); the CPU class and
thread count are recorded. The JSON also keeps the report run's scores.json and audit.json
whole: it is the result file of "the quick report built from nothing" (it replaces the
phantom's quick_report.json, which no script made).

    .venv/bin/python benchmarks/report_timing.py --data ../shared/data/chest_xray \\
        --json benchmarks/results/real_quick_report.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from gan_lib import config, device, storage
from gan_lib.gan import run_folder

sys.path.insert(0, str(Path(__file__).resolve().parent))
import timing  # noqa: E402  (benchmarks/ is not a package)

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "real_quick_report.json"


def timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> float:
    with timing.Stopwatch() as watch:
        subprocess.run(cmd, cwd=cwd, env=env, check=True)
    return watch.seconds


def calibration(meta: dict, scores: dict) -> dict:
    """The CPU class (model, flags, ISA caps, threads) and what "auto" meant in the clone:
    both decisions, measured there on first use (their seconds are inside the notebooks' that
    made them: training's in 02, extraction's in 05), from the run's config.json and scores.json."""
    return {"cpu_class": device.machine(torch.device("cpu")),
            "calibration": {"training": meta.get("calibration"),
                            "extraction": scores.get("calibration")}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="a Kermany-layout folder of chest X-rays")
    p.add_argument("--profile", default="quick")
    p.add_argument("--workdir", help="where to clone (default: a new temporary folder)")
    p.add_argument("--json", nargs="?", const=str(DEFAULT_JSON))
    p.add_argument("--compare-fp32", action="store_true",
                   help="then score the report's run again with the extraction of before "
                        "(fp32, BatchNorm separate) in the same clone, cold caches alike")
    args = p.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="cxr-gan-fresh-"))
    clone = work / "clone"
    subprocess.run(["git", "clone", "-q", str(config.REPO_ROOT), str(clone)], check=True)
    (clone / "data" / "raw").mkdir(parents=True, exist_ok=True)
    (clone / "data" / "raw" / "chest_xray").symlink_to(Path(args.data).resolve())
    # no GAN_LIB_* settings, and torch.compile's kernels cold too: the clone's own (empty)
    # data/cache/inductor, where gan_lib puts them when TORCHINDUCTOR_CACHE_DIR is not set
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("GAN_LIB_") and k != "TORCHINDUCTOR_CACHE_DIR"}
    env["MPLBACKEND"] = "Agg"
    setup = timed(["make", ".venv/.installed"], clone, env)
    report = timed(["make", "report", f"PROFILE={args.profile}"], clone, env)
    build = storage.read_json(clone / "reports" / "build.json")
    run_dir = clone / "runs" / args.profile
    scores, meta = storage.read_json(run_dir / "scores.json"), storage.read_json(run_dir / "config.json")
    audited = storage.read_json(run_dir / "audit.json")
    before = None
    if args.compare_fp32:  # Table 1 again, extracted as before this project's default changed
        python = str(clone / ".venv" / "bin" / "python")
        wall = timed([python, "-m", "gan_lib", "score", args.profile, "--set", "precision=fp32",
                      "--set", "fold_bn=false", "--set", "compiled=false"], clone, env)
        fp32 = storage.read_json(run_dir / "scores.json")
        before = {"extraction": fp32.get("extraction"), "score_run_seconds": fp32["seconds"],
                  "command_seconds": round(wall, 1),
                  "speedup_of_default": round(fp32["seconds"] / scores["seconds"], 3),
                  "fid": {str(r["iteration"]): r["value"] for r in fp32["scores"]
                          if r["metric"] == "fid" and r["kind"] == "generated"}}
    result = {
        "what": (f"the README's two commands on a fresh clone with the Kermany folder at "
                 f"data/raw/chest_xray: make .venv/.installed, then make report "
                 f"PROFILE={args.profile} (nothing cached)"),
        "setup_seconds": round(setup, 1), "report_seconds": round(report, 1),
        "report_minutes": round(report / 60, 2),
        "stages": [{k: s[k] for k in ("notebook", "seconds", "images_extracted")}
                   for s in build["stages"]],
        "images_extracted": sum(s["images_extracted"] for s in build["stages"]),
        "total_seconds": build["total_seconds"], "git_commit": build.get("git_commit"),
        "cpu_isa": device.cpu_isa(), "threads": torch.get_num_threads(),
        **calibration(meta, scores),
        "cpu_count": os.cpu_count(), "training": {"seed": meta["config"]["seed"], "precision": meta["precision"],
                                                  "segments": meta["segments"]},
        "scoring": {"extraction": scores.get("extraction"), "settings": scores["settings"],
                    "seconds": scores["seconds"]},
        "data": scores["data"], "load_average_end": timing.load_average(),
        "scores": scores, "audit": audited, "score_stage_fp32_same_clone": before,
        "versions": run_folder.versions(),
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(["benchmarks/report_timing.py", *sys.argv[1:]]),
    }
    print(f"setup {setup:.0f} s, report {report:.0f} s ({report / 60:.1f} min) on "
          f"{result['cpu_isa']}, {result['images_extracted']:,} images through Inception")
    if before:
        print(f"Table 1 scoring: {scores['seconds']:.0f} s ({scores.get('extraction')}) vs "
              f"{before['score_run_seconds']:.0f} s ({before['extraction']}): "
              f"{before['speedup_of_default']:.2f}x")
    if args.json:
        storage.write_json(Path(args.json), storage.portable(result))


if __name__ == "__main__":
    main()
