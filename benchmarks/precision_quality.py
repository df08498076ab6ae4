"""Does bf16 autocast cost quality? Two runs of the same length and seed, fp32 vs bf16, scored alike.

Trains the quick profile's DCGAN twice on the same data and seed (only ``precision`` differs),
times each run (images/s of the whole train() call, grids and checkpoints included), and
scores both final snapshots with the same FID/KID protocol (same real statistics, same latents).
The real-vs-real floor of that protocol is printed beside them.

    .venv/bin/python benchmarks/precision_quality.py                       # ~15 min on 2 CPU cores
    .venv/bin/python benchmarks/precision_quality.py --iterations 40 --n-fake 64 --n-real 128
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from gan_lib import config, metrics, train


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
            "train_seconds": round(seconds, 1),
            "images_per_s": round(args.iterations * cfg.batch_size / seconds, 1),
            "fid": round(generated["fid"]["value"], 3), "fid_name": generated["fid"]["name"],
            "kid": round(generated["kid"]["value"], 5), "n_real": generated["fid"]["n_real"],
            "floor_fid": round(floor["value"], 3), "floor": floor["compared"],
            "extractor": scores["extractor"], "weights_sha256": scores["weights"]["sha256"],
            "data": scores["data"]["source"],
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
    p.add_argument("--json", type=Path, help="also write the results here")
    args = p.parse_args()
    results = run(args)
    print(f"\nSame seed and length, quick profile sizes; data: {results[0]['data']}; "
          f"extractor {results[0]['extractor']}, weights sha256 {results[0]['weights_sha256'][:12]}")
    print(f"{'precision':>9} {'train s':>8} {'img/s':>7} {'FID':>9} {'KID':>9}   floor FID")
    for r in results:
        print(f"{r['precision']:>9} {r['train_seconds']:>8} {r['images_per_s']:>7} "
              f"{r['fid']:>9} {r['kid']:>9}   {r['floor_fid']} ({r['floor']})")
    print(f"bf16 / fp32 speed: {results[1]['images_per_s'] / results[0]['images_per_s']:.2f}x; "
          f"FID is {results[0]['fid_name']} (n_fake {args.n_fake}, n_real {results[0]['n_real']})")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
