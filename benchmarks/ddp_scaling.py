"""Scaling out: training throughput with 1, 2, ... processes under torchrun (DDP).

Each setting trains the same run (the quick profile's networks and global batch, fp32, the
phantom) for ``--iters`` iterations with ``torchrun --standalone --nproc_per_node=N -m gan_lib
-- train``, in a fresh run folder, exactly as a user would launch it. Throughput is read from
the run's own losses.jsonl (rank 0's clock after each step), over the iterations after
``--warmup``: images/s = global batch x steps / seconds. The global batch stays the same for
every N (strong scaling: each rank computes batch / N images a step), so

    scaling efficiency = images/s with N processes / (N x images/s with 1 process),

both with the same threads per process. Settings run in interleaved rounds and the median is
reported, so a slow spell on a shared machine hits every setting alike.

On this 2-core CPU (gloo): 1 process x 1 thread, 2 processes x 1 thread each (one core
each), and 1 process x 2 threads (the single-process way to use both cores)::

    .venv/bin/python benchmarks/ddp_scaling.py --json benchmarks/results/ddp_scaling_cpu.json

On a machine with GPUs (NCCL; one process per GPU; threads do not matter there)::

    .venv/bin/python benchmarks/ddp_scaling.py --device cuda --nproc 1,2,4,8 --iters 200 \\
        --warmup 20 --json benchmarks/results/ddp_scaling_gpu.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

from gan_lib import config, storage
from gan_lib.gan import launch, run_folder

sys.path.insert(0, str(Path(__file__).resolve().parent))
import timing  # noqa: E402  (benchmarks/ is not a package)


def one_launch(nproc: int, threads: int, args: argparse.Namespace, home: Path,
               name: str) -> dict[str, Any]:
    """Train ``args.iters`` iterations with ``nproc`` processes; images/s after warm-up."""
    cfg = config.make_train_config(
        "quick", name=name, source=args.source, precision=args.precision, device=args.device,
        iterations=args.iters, snapshot_at=(args.iters,), checkpoint_every=args.iters,
        batch_size=args.batch_size)
    env = {**os.environ, "GAN_LIB_HOME": str(home), "OMP_NUM_THREADS": str(threads),
           "TQDM_DISABLE": "1"}
    done = subprocess.run([sys.executable, *launch.command(cfg, nproc, overwrite=True)],
                          env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{nproc} process(es) failed:\n{(done.stdout + done.stderr)[-3000:]}")
    log = storage.read_jsonl(home / "runs" / name / "losses.jsonl")
    timed = log[args.warmup:]
    seconds = timed[-1]["seconds"] - log[args.warmup - 1]["seconds"]
    row = {"images_per_second": cfg.batch_size * len(timed) / seconds,
           "seconds_per_step": seconds / len(timed)}
    print(f"{nproc} process(es) x {threads} thread(s): {row['images_per_second']:.1f} img/s",
          flush=True)
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nproc", default="1,2", help="process counts, comma-separated")
    p.add_argument("--threads", default="1", help="threads per process (CPU), comma-separated;"
                   " the single-process run also gets every core's worth")
    p.add_argument("--iters", type=int, default=24)
    p.add_argument("--warmup", type=int, default=4)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=64, help="the global batch")
    p.add_argument("--precision", default="fp32", choices=config.PRECISIONS)
    p.add_argument("--device", default="cpu")
    p.add_argument("--source", default="phantom")
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    counts = [int(n) for n in args.nproc.split(",")]
    threads = [int(t) for t in args.threads.split(",")]
    settings = [(n, t) for n in counts for t in threads]
    if args.device == "cpu" and (1, os.cpu_count()) not in settings:
        settings.append((1, os.cpu_count()))  # one process using the whole CPU
    with tempfile.TemporaryDirectory() as tmp:
        # img/s comes from rank 0's log after warm-up steps, not from the wall time of a launch
        timed = timing.interleaved(
            {(n, t): lambda n=n, t=t: one_launch(n, t, args, Path(tmp), f"scale-{n}x{t}")
             for n, t in settings}, args.rounds, warmup=0)
    samples: dict[tuple[int, int], list[dict[str, Any]]] = timed.results
    rows = []
    for (n, t), got in samples.items():
        ips = statistics.median(g["images_per_second"] for g in got)
        rows.append({"processes": n, "threads_per_process": t, "images_per_second": round(ips, 2),
                     "rounds": [round(g["images_per_second"], 2) for g in got]})
    for row in rows:
        base = next((b for b in rows if b["processes"] == 1
                     and b["threads_per_process"] == row["threads_per_process"]), None)
        row["scaling_efficiency"] = round(
            row["images_per_second"] / (row["processes"] * base["images_per_second"]), 3) \
            if base else None
    print("\n| processes | threads each | img/s (median) | scaling efficiency |")
    print("| ---: | ---: | ---: | ---: |")
    for row in rows:
        eff = row["scaling_efficiency"]
        print(f"| {row['processes']} | {row['threads_per_process']} | "
              f"{row['images_per_second']:.1f} | {eff if eff is not None else '-'} |")
    if args.json:
        storage.write_json(args.json, storage.portable({
            "benchmark": "ddp_scaling",
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "command": {k: str(v) for k, v in vars(args).items()},
            "what": "strong scaling: the quick profile's DCGAN, global batch fixed, fp32, "
                    "launched with torchrun --standalone; img/s from rank 0's losses.jsonl "
                    "after warm-up, median over interleaved rounds",
            "device": args.device, "backend": "nccl" if args.device == "cuda" else "gloo",
            "cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
            "gpus": torch.cuda.device_count() if torch.cuda.is_available() else 0,
            "versions": {"python": platform.python_version(), "torch": torch.__version__},
            "git_commit": run_folder.git_commit(), "rows": rows,
        }))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
