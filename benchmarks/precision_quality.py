"""Does bf16 autocast cost quality? Two runs of the same length and seed, fp32 vs bf16, scored alike.

Trains the quick profile's DCGAN twice on the same data and seed (only ``precision`` differs),
times each run (images/s of the whole train() call, grids and checkpoints included), and
scores both final snapshots with the same FID/KID protocol (same real statistics, same latents).
The real-vs-real floor of that protocol is printed beside them. ``--json FILE`` writes every
printed number with its provenance (date, versions, threads, device, the exact settings, the
weights' origin and SHA-256, the data); ``--json`` alone writes
benchmarks/results/precision_quality.json, the file benchmarks/README.md quotes.

    .venv/bin/python benchmarks/precision_quality.py --json                # make bench-quality: slow
    .venv/bin/python benchmarks/precision_quality.py --iterations 40 --n-fake 64 --n-real 128
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import torch
import torch_fidelity

from gan_lib import config, metrics, runinfo, train

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "precision_quality.json"


def run(args: argparse.Namespace) -> list[dict]:
    config.RUNS_DIR = Path(tempfile.mkdtemp(prefix="precision-quality-"))
    score_cfg = config.make_score_config("quick", n_fake=args.n_fake, n_real=args.n_real,
                                         metrics=("fid", "kid"),
                                         kid_subset_size=min(500, args.n_fake))
    results = []
    for precision in ("fp32", "bf16"):
        cfg = config.make_train_config(
            "quick", name=f"quality-{precision}", source=args.source, precision=precision,
            iterations=args.iterations, snapshot_at=(args.iterations,), seed=args.seed,
            checkpoint_every=args.iterations)
        t0 = time.perf_counter()
        run_dir = train.train(cfg, overwrite=True)
        seconds = time.perf_counter() - t0
        scores = metrics.score_run(run_dir, score_cfg)
        generated = {r["metric"]: r for r in scores["scores"] if r["kind"] == "generated"}
        floor = next(r for r in scores["scores"] if r["kind"] == "floor" and r["metric"] == "fid")
        results.append({
            "precision": precision, "iterations": args.iterations, "batch_size": cfg.batch_size,
            "train_seconds": seconds, "images_per_s": args.iterations * cfg.batch_size / seconds,
            "fid": generated["fid"]["value"], "fid_name": generated["fid"]["name"],
            "kid": generated["kid"]["value"], "n_fake": generated["fid"]["n_fake"],
            "n_real": generated["fid"]["n_real"], "floor_fid": floor["value"],
            "floor": floor["compared"], "floor_n_fake": floor.get("n_fake"),
            "floor_n_real": floor.get("n_real"), "extractor": scores["extractor"],
            "weights": {k: scores["weights"].get(k) for k in ("origin", "sha256", "path")},
            "weights_sha256": scores["weights"]["sha256"], "data": scores["data"]["source"],
            "data_fingerprint": scores["data"]["fingerprint"],
            "scoring_device": scores["device"], "scoring_precision": scores["precision"],
        })
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--iterations", type=int, default=300)
    p.add_argument("--n-fake", type=int, default=1024)
    p.add_argument("--n-real", type=int, default=2048)
    p.add_argument("--source", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, nargs="?", const=DEFAULT_JSON,
                   help=f"also write the results here (no value: {DEFAULT_JSON})")
    args = p.parse_args()
    started = {"date": time.strftime("%Y-%m-%d %H:%M:%S %z"), **runinfo.versions(),
               "torch_fidelity": torch_fidelity.__version__, "git_commit": runinfo.git_commit(),
               "machine": platform.machine(), "load_average_at_start": list(os.getloadavg()),
               "threads": torch.get_num_threads()}
    results = run(args)
    print(f"\nSame seed and length, quick profile sizes; data: {results[0]['data']}; "
          f"extractor {results[0]['extractor']}, weights sha256 {results[0]['weights_sha256'][:12]}")
    print(f"{'precision':>9} {'train s':>8} {'img/s':>7} {'FID':>9} {'KID':>9}   floor FID")
    for r in results:
        print(f"{r['precision']:>9} {r['train_seconds']:>8.1f} {r['images_per_s']:>7.1f} "
              f"{r['fid']:>9.3f} {r['kid']:>9.5f}   {r['floor_fid']:.3f} ({r['floor']})")
    speed = results[1]["images_per_s"] / results[0]["images_per_s"]
    print(f"bf16 / fp32 speed: {speed:.2f}x; "
          f"FID is {results[0]['fid_name']} (n_fake {args.n_fake}, n_real {results[0]['n_real']})")
    if args.json:
        out = {"benchmark": "precision_quality",
               "provenance": {**started, "device": results[0]["scoring_device"],
                              "weights": results[0]["weights"]},
               "settings": {**vars(args), "json": str(args.json), "profile": "quick"},
               "runs": results, "ratio_bf16_over_fp32_images_per_s": speed}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
