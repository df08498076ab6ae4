"""Does small-data training help? DiffAugment and an EMA generator, measured on this data.

Trains the same run four ways (baseline, DiffAugment, EMA, both), each on the full training
split and on a subset, with one seed, profile, precision and data; then scores every snapshot
with Table 1's rules (FID/KID against the reference set, floors at the same n pair) and audits
the final snapshot (copy rate, C_T). Writes everything, with provenance, to ``--json`` and
prints one Markdown table.

    .venv/bin/python benchmarks/small_data.py --json benchmarks/results/small_data.json
    .venv/bin/python benchmarks/small_data.py --profile smoke --sizes 64 \\
        --settings baseline,diffaug --json /tmp/small_data_smoke.json    # a tiny check

Cost on the 2-core CPU at the quick profile: ~10-20 min of training per run and a few minutes
of scoring, so about 2-3 hours for all eight; runs already finished are reused (their folders
under runs/ are named sd-<setting>-<size>), so it can be stopped and restarted.
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from gan_lib import audit, config, io, metrics, runinfo, train
from gan_lib import device as device_lib
from gan_lib.augment import Augment

SETTINGS = {
    "baseline": {},
    "diffaug": {"augment": "translation,cutout"},
    "ema": {"ema_decay": 0.999},
    "both": {"augment": "translation,cutout", "ema_decay": 0.999},
}


def one_run(profile: str, setting: str, size: int | None, precision: str,
            source: str) -> dict[str, Any]:
    """Train (or reuse) one run, score and audit it; its row of the result."""
    name = f"sd-{setting}-{size or 'all'}"
    cfg = config.make_train_config(profile, name=name, source=source, precision=precision,
                                   subset=size, **SETTINGS[setting])
    run_dir = config.RUNS_DIR / name
    finished = (run_dir / "snapshots" / f"G_iter_{cfg.iterations:06d}.pt").is_file()
    if not finished:
        train.train(cfg, resume=run_dir.is_dir() and any(run_dir.iterdir()))
    scores = metrics.score_run(run_dir)
    audited = audit.audit_run(run_dir)
    memo = audited["memorization"]
    return {
        "setting": setting, "subset": size, "run": name, "config": cfg.to_dict(),
        "scores": [{k: r.get(k) for k in ("metric", "kind", "iteration", "value", "std",
                                          "n_fake", "n_real", "compared", "same_n")}
                   for r in scores["scores"] if r["metric"] in ("fid", "kid")],
        "copy_rate": {space: memo[space]["copy_rate"]
                      for space in ("feature (cosine)", "pixel (RMS)")},
        "C_T": memo["C_T"],
        "extractor": scores["extractor"], "sampling": scores["sampling"],
    }


def step_cost(profile: str, settings: list[str], precision: str, rounds: int = 3,
              steps: int = 8) -> dict[str, dict[str, Any]]:
    """Images/s of one training step under each setting, timed side by side in this process.

    The long runs share the machine with other work, so their wall time says little about what
    augmentation and EMA cost. Here each setting's networks take ``steps`` steps on one fixed
    batch, in interleaved rounds after a warm-up step; the median over rounds is reported with
    its ratio to the baseline's.
    """
    cfg0 = config.make_train_config(profile, precision=precision)
    device = torch.device("cpu")
    real = torch.rand(cfg0.batch_size, 1, cfg0.image_size, cfg0.image_size) * 2 - 1
    autocast = device_lib.autocast_context(precision, device)
    setups = {}
    for s in settings:
        cfg = config.make_train_config(profile, precision=precision, **SETTINGS[s])
        setups[s] = (train.build_nets(cfg, device), Augment(cfg.augment, cfg.seed))
    z = torch.randn(cfg0.batch_size, cfg0.z_dim, generator=torch.Generator().manual_seed(0))
    seconds: dict[str, list[float]] = {s: [] for s in settings}
    for r in range(rounds + 1):  # round 0 warms up
        for s, (nets, aug) in setups.items():
            t0 = time.perf_counter()
            for k in range(steps):
                train.train_step(nets, real, z, autocast, aug, k).tolist()  # .tolist(): sync
            if r:
                seconds[s].append(time.perf_counter() - t0)
    out = {s: {"images_per_second": round(cfg0.batch_size * steps / statistics.median(t), 1),
               "rounds_seconds": [round(x, 3) for x in t]} for s, t in seconds.items()}
    base = out.get("baseline", {}).get("images_per_second")
    for v in out.values():
        v["vs_baseline"] = round(v["images_per_second"] / base, 3) if base else None
    return out


def table(rows: list[dict[str, Any]], cost: dict[str, dict[str, Any]]) -> str:
    """FID per snapshot, the floor, copy rates, C_T and img/s: one row per run."""
    iterations = sorted({r["iteration"] for row in rows for r in row["scores"]
                         if r["kind"] == "generated"})
    head = ["setting", "subset", *(f"FID it {it}" for it in iterations), "FID floor (same n)",
            "copy rate feat.", "copy rate px", "C_T", "step img/s (vs baseline)"]
    out = ["| " + " | ".join(head) + " |", "| --- | --- |" + " ---: |" * (len(head) - 2)]
    for row in rows:
        fid = {r["iteration"]: r["value"] for r in row["scores"]
               if r["metric"] == "fid" and r["kind"] == "generated"}
        floor = next(r["value"] for r in row["scores"] if r["metric"] == "fid"
                     and r["kind"] == "floor" and "held out" in r["compared"])
        cells = [row["setting"], str(row["subset"] or "all"),
                 *(f"{fid[it]:.1f}" for it in iterations), f"{floor:.3f}",
                 f"{row['copy_rate']['feature (cosine)']:.4f}",
                 f"{row['copy_rate']['pixel (RMS)']:.4f}", f"{row['C_T']['C_T']:.2f}",
                 f"{cost[row['setting']]['images_per_second']:.0f} "
                 f"({cost[row['setting']]['vs_baseline']:.2f}x)"]
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--profile", default="quick", choices=tuple(config.PROFILES))
    p.add_argument("--settings", default=",".join(SETTINGS), help=f"of {list(SETTINGS)}")
    p.add_argument("--sizes", default="all,1000", help="'all' or a subset size, comma-separated")
    p.add_argument("--precision", default="bf16", choices=config.PRECISIONS)
    p.add_argument("--source", default="phantom")
    p.add_argument("--json", type=Path, help="write all results with provenance here")
    args = p.parse_args()
    settings = [s.strip() for s in args.settings.split(",") if s.strip()]
    unknown = sorted(set(settings) - set(SETTINGS))
    if unknown:
        raise SystemExit(f"--settings: unknown {unknown}; expected some of {list(SETTINGS)}")
    sizes = [None if s.strip() == "all" else int(s) for s in args.sizes.split(",")]
    t0 = time.perf_counter()
    cost = step_cost(args.profile, settings, args.precision)  # first: on a machine at rest
    rows = [one_run(args.profile, setting, size, args.precision, args.source)
            for size in sizes for setting in settings]
    print(table(rows, cost))
    if args.json:
        result = {
            "benchmark": "small_data", "created": dt.datetime.now(dt.timezone.utc).isoformat(
                timespec="seconds"),
            "command": vars(args) | {"json": str(args.json)},
            "versions": {"python": platform.python_version(), "torch": torch.__version__},
            "threads": torch.get_num_threads(), "git_commit": runinfo.git_commit(),
            "rows": rows, "step_cost": cost, "seconds": round(time.perf_counter() - t0, 1),
        }
        io.write_json(args.json, result)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
