"""Training speed: gan_lib's loop against the plain PyTorch DCGAN tutorial loop, side by side.

Both train the same DCGAN (64x64, one channel, batch 128 by default) on the same phantom folder,
in one process, alternating rounds of the same number of timed iterations after warm-up:

  reference       what a user writes from the PyTorch DCGAN tutorial: torchvision ImageFolder
                  (Grayscale, Resize, CenterCrop, ToTensor, Normalize), a DataLoader with
                  workers that decodes every image of every batch, Sigmoid + BCELoss, fp32 eager.
  gan_lib fp32    gan_lib.gan.train's step (train.train_step, the function train() runs) on the
                  data set held as one uint8 tensor, batches taken by index.
  gan_lib bf16    the same with bf16 autocast (what precision="auto" picks on CPUs with
                  AVX512-BF16/AMX and on recent GPUs).

It prints images/s, seconds per step and GFLOP/s of each (FLOPs of one step counted by
torch.utils.flop_counter), and each one's ratio to the reference, overall and per round.
``--json FILE`` writes every printed number with its provenance (date, versions, threads,
device, the exact settings, data); ``--json`` alone writes benchmarks/results/train_throughput.json,
the file benchmarks/README.md quotes.

    .venv/bin/python benchmarks/train_throughput.py                  # make bench: a few minutes
    .venv/bin/python benchmarks/train_throughput.py --threads 1 --channels-last --json out.json
    .venv/bin/python benchmarks/train_throughput.py --iters 2 --rounds 1 --batch-size 64   # smoke

On a machine shared with other jobs, ``--threads 1`` gives much steadier numbers: two OpenMP
threads stall at every barrier while another process holds one of the cores. gan_lib's
channels_last and compile follow TrainConfig's defaults unless given.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import itertools
import json
import os
import platform
import time
from pathlib import Path

import torch
import torchvision.transforms as T
from torch import nn
from torch.utils.data import DataLoader
from torch.utils.flop_counter import FlopCounterMode
from torchvision.datasets import ImageFolder

from gan_lib import config, data
from gan_lib.device import autocast_context, bf16_probe, resolve_device
from gan_lib.gan import batches, models, runinfo, train

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "train_throughput.json"


def reference_setup(folder: Path, args: argparse.Namespace, device: torch.device):
    """The tutorial's data pipeline, networks (same sizes; D ends in a Sigmoid), loss, Adam."""
    size = args.image_size
    dataset = ImageFolder(str(folder), transform=T.Compose([
        T.Grayscale(1), T.Resize(size), T.CenterCrop(size), T.ToTensor(), T.Normalize((0.5,), (0.5,)),
    ]))
    loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=True,
                        num_workers=args.workers, drop_last=True)
    G = models.Generator(100, 64, size).apply(models.weights_init).to(device)
    D = nn.Sequential(models.Discriminator(64, size), nn.Sigmoid()).apply(models.weights_init)
    D = D.to(device)
    opt_G = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_D = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    return loader, G, D, opt_G, opt_D


CRITERION = nn.BCELoss()  # the tutorial's loss: D ends in a Sigmoid


def reference_step(real: torch.Tensor, G, D, opt_G, opt_D) -> list[float]:
    """The tutorial's iteration: D on real, D on fake (two backwards), then G; .item() logging."""
    b, device = real.shape[0], real.device
    D.zero_grad()
    label = torch.full((b,), 1.0, device=device)
    output = D(real).view(-1)
    err_d_real = CRITERION(output, label)
    err_d_real.backward()
    d_x = output.mean().item()
    fake = G(torch.randn(b, 100, 1, 1, device=device))
    label.fill_(0.0)
    output = D(fake.detach()).view(-1)
    err_d_fake = CRITERION(output, label)
    err_d_fake.backward()
    opt_D.step()
    G.zero_grad()
    label.fill_(1.0)
    err_g = CRITERION(D(fake).view(-1), label)
    err_g.backward()
    opt_G.step()
    return [(err_d_real + err_d_fake).item(), err_g.item(), d_x]


def time_reference(setup, n: int, device: torch.device) -> float:
    """Seconds for ``n`` iterations, batches from a fresh DataLoader iterator whose worker
    start-up and first batch are not timed; the workers are shut down before returning, so
    they do not prefetch while the other contestants are timed."""
    loader, G, D, opt_G, opt_D = setup
    batches = itertools.chain.from_iterable(itertools.repeat(loader))  # epoch after epoch
    reference_step(next(batches)[0].to(device), G, D, opt_G, opt_D)  # warm-up, untimed
    t0 = time.perf_counter()
    for _ in range(n):
        reference_step(next(batches)[0].to(device), G, D, opt_G, opt_D)
    elapsed = time.perf_counter() - t0
    del batches  # ends the iterator, hence its worker processes
    return elapsed


def gan_lib_setup(images: torch.Tensor, args: argparse.Namespace, precision: str,
                  device: torch.device):
    cfg = config.TrainConfig(name="bench", batch_size=args.batch_size, iterations=10**6,
                             snapshot_at=(), image_size=args.image_size, precision=precision,
                             channels_last=args.channels_last, compile=args.compile)
    nets = train.build_nets(cfg, device)
    autocast = autocast_context(precision, device)
    noise = torch.Generator(device=device)
    return {"cfg": cfg, "nets": nets, "autocast": autocast, "noise": noise, "step": 0,
            "images": images.to(device)}


def gan_lib_iteration(s: dict) -> list[float]:
    """What train()'s loop does per iteration on a CPU: index a batch, step, one host sync."""
    cfg, images, step = s["cfg"], s["images"], s["step"]
    per_epoch = len(images) // cfg.batch_size
    epoch, pos = divmod(step, per_epoch)
    if pos == 0 or "perm" not in s:
        s["perm"] = batches.epoch_permutation(len(images), cfg.seed, epoch).to(images.device)
    idx = s["perm"][pos * cfg.batch_size:(pos + 1) * cfg.batch_size]
    real = batches.real_batch(images, idx, cfg.channels_last)
    stats = train.train_step(s["nets"], real, batches.step_latents(cfg, step, s["noise"]),
                             s["autocast"])
    s["step"] += 1
    return stats.tolist()


def time_gan_lib(s: dict, n: int) -> float:
    gan_lib_iteration(s)  # warm-up, untimed (as for the reference)
    t0 = time.perf_counter()
    for _ in range(n):
        gan_lib_iteration(s)
    return time.perf_counter() - t0


def step_flops(args: argparse.Namespace) -> int:
    """FLOPs of one gan_lib G+D training step (forward and backward), fp32 eager, counted once."""
    eager = argparse.Namespace(**{**vars(args), "compile": False})
    zeros = torch.zeros(args.batch_size, 1, args.image_size, args.image_size, dtype=torch.uint8)
    s = gan_lib_setup(zeros, eager, "fp32", torch.device("cpu"))
    with FlopCounterMode(display=False) as counter:
        gan_lib_iteration(s)
    return counter.get_total_flops()


def reference_step_flops(folder: Path, args: argparse.Namespace) -> int:
    """FLOPs of one tutorial-loop step (its G update also computes D's weight gradients)."""
    _, G, D, opt_G, opt_D = reference_setup(folder, args, torch.device("cpu"))
    real = torch.zeros(args.batch_size, 1, args.image_size, args.image_size)
    with FlopCounterMode(display=False) as counter:
        reference_step(real, G, D, opt_G, opt_D)
    return counter.get_total_flops()


def provenance(device: torch.device) -> dict:
    """When, where and with what the numbers were measured."""
    return {"date": time.strftime("%Y-%m-%d %H:%M:%S %z"), **runinfo.versions(),
            "torch_fidelity": importlib.metadata.version("torch-fidelity"),
            "git_commit": runinfo.git_commit(), "machine": platform.machine(),
            "load_average_at_start": list(os.getloadavg()),
            "processor": platform.processor(), "threads": torch.get_num_threads(),
            "device": str(device),
            "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "bf16_probe": bf16_probe(device)}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--iters", type=int, default=4, help="timed iterations per round and contestant")
    p.add_argument("--rounds", type=int, default=2, help="alternations of the contestants")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--workers", type=int, default=2, help="DataLoader workers of the reference")
    p.add_argument("--device", default="auto")
    defaults = config.TrainConfig()
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction,
                   default=defaults.channels_last, help="gan_lib: channels_last memory format")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=defaults.compile,
                   help="gan_lib: torch.compile G and D")
    p.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice)")
    p.add_argument("--json", type=Path, nargs="?", const=DEFAULT_JSON,
                   help=f"also write the results to this JSON file (no value: {DEFAULT_JSON})")
    args = p.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)  # both contestants; DataLoader workers use their own
    device = resolve_device(args.device)
    prov = provenance(device)  # before the timings: the load average at the start
    ds = data.load_dataset("phantom", split="train", image_size=args.image_size)
    folder = config.PHANTOM_DIR / "train"  # the Kermany-layout folder load_dataset read
    if not folder.is_dir():
        raise SystemExit(f"phantom folder {folder} not found; run: python -m gan_lib data --source phantom")
    torch.manual_seed(0)
    ref = reference_setup(folder, args, device)
    ours = {"fp32": gan_lib_setup(ds.images, args, "fp32", device)}
    if bf16_probe(device) is not None:
        ours["bf16"] = gan_lib_setup(ds.images, args, "bf16", device)
    contestants = {"reference fp32": lambda n: time_reference(ref, n, device)}
    for precision, state in ours.items():
        contestants[f"gan_lib {precision}"] = lambda n, s=state: time_gan_lib(s, n)
    print(f"DCGAN {args.image_size}x{args.image_size}, batch {args.batch_size}, {len(ds.images):,} "
          f"images ({ds.description}), {device}, {torch.get_num_threads()} threads; "
          f"{args.rounds} rounds x {args.iters} timed iterations each; gan_lib channels_last="
          f"{args.channels_last}, compile={args.compile}")
    seconds = dict.fromkeys(contestants, 0.0)
    rounds = []
    for r in range(args.rounds):
        per_step = {}
        for name, run in contestants.items():
            dt = run(args.iters)
            seconds[name] += dt
            per_step[name] = dt / args.iters
            print(f"  round {r + 1}: {name:15s} {dt / args.iters:7.3f} s/step", flush=True)
        ratios = {name: per_step["reference fp32"] / t for name, t in per_step.items()}
        rounds.append({"round": r + 1, "s_per_step": per_step, "ratio_vs_reference": ratios})
        print(f"  round {r + 1} vs reference: "
              + ", ".join(f"{k} {v:.2f}x" for k, v in ratios.items()), flush=True)
    flops, ref_flops = step_flops(args), reference_step_flops(folder, args)
    n_steps = args.rounds * args.iters
    ref_rate = n_steps * args.batch_size / seconds["reference fp32"]
    print(f"\none step = {flops / 1e9:.1f} GFLOP (gan_lib's step, torch.utils.flop_counter, forward "
          f"+ backward; the tutorial's step: {ref_flops / 1e9:.1f} GFLOP, its G update also "
          "computes D's weight gradients); GFLOP/s of every contestant counts gan_lib's work")
    print(f"{'contestant':15s} {'img/s':>8s} {'s/step':>8s} {'GFLOP/s':>8s} {'vs reference':>13s}")
    results = {}
    for name, sec in seconds.items():
        rate = n_steps * args.batch_size / sec
        results[name] = {"images_per_s": rate, "s_per_step": sec / n_steps,
                         "gflop_per_s": flops * n_steps / sec / 1e9, "ratio": rate / ref_rate,
                         "seconds_total": sec}
        print(f"{name:15s} {rate:8.1f} {sec / n_steps:8.3f} {results[name]['gflop_per_s']:8.1f} "
              f"{rate / ref_rate:12.2f}x")
    if "gan_lib bf16" in results:
        bf16_fp32 = results["gan_lib bf16"]["images_per_s"] / results["gan_lib fp32"]["images_per_s"]
        print(f"gan_lib bf16 / gan_lib fp32: {bf16_fp32:.2f}x")
    if args.json:
        settings = {**vars(args), "json": str(args.json), "timed_steps_per_contestant": n_steps,
                    "reference_optimizer": "Adam lr 2e-4 betas (0.5, 0.999)", "latent_size": 100}
        out = {"benchmark": "train_throughput", "provenance": prov,
               "settings": settings,
               "data": {"source": ds.source, "folder": str(folder), "n_images": len(ds.images),
                        "fingerprint": ds.fingerprint, "is_synthetic": bool(ds.is_synthetic)},
               "gflop_per_step": flops / 1e9, "gflop_per_step_reference": ref_flops / 1e9,
               "results": results, "rounds": rounds}
        if "gan_lib bf16" in results:
            out["ratio_gan_lib_bf16_over_fp32"] = bf16_fp32
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
