"""What the usefulness study (TSTR) costs at the quick profile, and what it gives on the phantom.

Runs ``gan_lib.studies.utility.tstr`` with the quick classifier preset on the real training split
(5,216 images at 64 px) and test split (624), with the *real training images standing in for
generated ones* (``utility.pool_sampler``): the GAN is plugged in by ``python -m gan_lib utility``.
So the timing is the study's own cost (generation excluded), and TSTR should come out ~ TRTR.

Records per seed the wall and CPU seconds of the three trainings the issue budgets (real,
synthetic, real + synthetic: <= 3 minutes together) and of the half-size reference pair, the
load average of the shared machine (start, end, and sampled every 10 s), and a short
interleaved check of one vs two intra-op threads (images/s of one epoch on 1,024 images).

    .venv/bin/python benchmarks/utility_budget.py --json benchmarks/results/utility_budget.json
    .venv/bin/python benchmarks/utility_budget.py --seeds 0 --json /tmp/u.json   # one seed
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
from pathlib import Path
from typing import Any

import torch

from gan_lib import storage
from gan_lib.data import load_dataset
from gan_lib.report import plots
from gan_lib.studies import classifier, utility, utility_tables
from gan_lib.studies.classifier import ClassifierConfig

sys.path.insert(0, str(Path(__file__).resolve().parent))
import timing  # noqa: E402  (benchmarks/ is not a package)

BUDGETED = ("real", "synthetic", "real + synthetic")  # the "all three trainings"
REFERENCE = ("real (half)", "synthetic (half)")


def thread_check(x: torch.Tensor, y: torch.Tensor, rounds: int = 2) -> dict[str, Any]:
    """Images/s of one epoch of the quick classifier on 1,024 images (every 5th: both classes),
    1 and 2 threads in turn."""
    def fit(threads: int) -> None:
        cfg = ClassifierConfig.preset("quick", epochs=1, threads=threads)
        classifier.fit(x[::5][:1024], y[::5][:1024], cfg, seed=0, progress=False)

    timed = timing.interleaved({"1": lambda: fit(1), "2": lambda: fit(2)}, rounds, warmup=0)
    return {"images_per_second": {k: timed.rates(k, 1024) for k in ("1", "2")},
            "load_average": timing.load_average()}


def per_seed(results: dict[str, Any], seed: int) -> dict[str, Any]:
    ways = results["ways"]

    def total(names, key):
        return sum(ways[w]["seeds"][str(seed)][key] for w in names if w in ways)

    return {"seed": seed,
            "three_trainings_seconds": total(BUDGETED, "seconds"),
            "three_trainings_cpu_seconds": total(BUDGETED, "cpu_seconds"),
            "reference_pair_seconds": total(REFERENCE, "seconds"),
            "reference_pair_cpu_seconds": total(REFERENCE, "cpu_seconds")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--source", default="phantom")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--threads", type=int, default=None, help="default: the preset's (1)")
    ap.add_argument("--json", required=True)
    ap.add_argument("--figure", default=None, help="also save the training-curve PNG here")
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    train, test = (load_dataset(args.source, split=s, image_size=args.size)
                   for s in ("train", "test"))
    cfg = ClassifierConfig.preset("quick", **({"threads": args.threads} if args.threads else {}))
    load_start, whole = timing.load_average(), timing.Stopwatch().start()
    threads = thread_check(train.images, train.labels)
    with timing.LoadSampler() as load:
        merged = utility.tstr((train.images, train.labels), (train.images, train.labels),
                              (test.images, test.labels), cfg, seeds=seeds)
    seeds_cost = [per_seed(merged, s) for s in seeds]
    result = {
        "what": "utility.tstr at the quick classifier preset; real training images stand in for "
                "generated ones (utility.pool_sampler), so TSTR ~ TRTR is expected",
        "command": "benchmarks/utility_budget.py " + " ".join(
            f"--{k} {v}" for k, v in vars(args).items() if v is not None),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "data": {"source": args.source, "description": train.description,
                 "train_fingerprint": train.fingerprint, "test_fingerprint": test.fingerprint},
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "torch_threads": cfg.threads, "load_average_start": list(load_start),
                    "load_average_end": timing.load_average(),
                    "load_average_1min_during": load.summary(),
                    "note": "2 cores shared with other jobs (a GAN training, scoring): "
                            "load averages above 2 mean the study had part of a core at times"},
        "thread_check": threads,
        "per_seed": seeds_cost,
        "all_seeds": {"three_trainings_seconds": sum(p["three_trainings_seconds"]
                                                     for p in seeds_cost),
                      "with_reference_seconds": sum(p["three_trainings_seconds"]
                                                    + p["reference_pair_seconds"]
                                                    for p in seeds_cost),
                      "script_wall_seconds": whole.elapsed,
                      "script_cpu_seconds": whole.cpu_elapsed},
        "table": utility_tables.results_table(merged).to_dict(orient="records"),
        "results": merged,
    }
    storage.write_json(args.json, storage.portable(result))
    print(utility_tables.results_table(merged).to_markdown(index=False, floatfmt=".4g"))
    print({k: v for k, v in result.items() if k in ("per_seed", "all_seeds", "thread_check")})
    if args.figure:
        plots.save_figure(plots.plot_utility_curves(merged), args.figure)


if __name__ == "__main__":
    main()
