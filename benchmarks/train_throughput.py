"""Training speed: gan_lib's loop against the plain PyTorch DCGAN tutorial loop, side by side.

Both train the same DCGAN (64x64, one channel, batch 128 by default) on the same images, in one
process, on the same torch threads, alternating rounds of the same number of timed iterations
after warm-up. Both get the same advantage: the training split is decoded once, before any
timing, into one uint8 tensor [N, 1, S, S] on the device, and every batch is taken from it by
index. No JPEG decoding and no DataLoader workers run in any timed loop, so the ratio measures
the training code, not the input pipeline:

  reference       what a user writes from the PyTorch DCGAN tutorial, fed from that tensor:
                  a fresh random order each epoch (DataLoader's shuffle=True, drop_last=True)
                  and the tutorial's conversion of each batch (ToTensor then
                  Normalize((0.5,), (0.5,)): x / 255, then (x - 0.5) / 0.5; see
                  :func:`tutorial_batches`); the tutorial's model and loss choices kept:
                  D ends in a Sigmoid, BCELoss, fp32 eager, contiguous layout, G's update
                  backpropagates into D's weights too, three ``.item()`` syncs a step.
  gan_lib fp32    gan_lib.train's step (train.train_step, the function train() runs) on the
                  same tensor: batches by gan_lib.batches (epoch order from the seed,
                  ``real_batch``), logits + BCE-with-logits, channels_last and compile as
                  TrainConfig's defaults unless given, one host sync a step.
  gan_lib bf16    the same with bf16 autocast, where the device computes bf16 natively
                  (``precision="auto"`` picks it on CUDA and on AMX CPUs only).

``--source`` picks the images (default the synthetic phantom; any Kermany-layout folder, e.g.
``../shared/data/chest_xray``, or ``pneumoniamnist``): speed does not depend on the pixels,
but the data set's size sets the epoch length. It prints images/s, seconds per step and
GFLOP/s of each (FLOPs of one step counted by torch.utils.flop_counter), and each one's ratio
to the reference, overall and per round. ``--json FILE`` writes every printed number with its
provenance (date, versions, threads, device, the exact settings, the data) and, under
``contestants``, exactly what each contestant gets; ``--json`` alone writes
benchmarks/results/train_throughput.json, the file docs/benchmarks.md quotes.

    .venv/bin/python benchmarks/train_throughput.py                  # make bench: a few minutes
    .venv/bin/python benchmarks/train_throughput.py --source ../shared/data/chest_xray --json
    .venv/bin/python benchmarks/train_throughput.py --iters 1 --rounds 1 --batch-size 16  # smoke

On a machine shared with other jobs, ``--threads 1`` gives much steadier numbers: two OpenMP
threads stall at every barrier while another process holds one of the cores.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import platform
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from gan_lib import config, data, storage
from gan_lib.device import autocast_context, bf16_probe, resolve_device
from gan_lib.gan import batches, models, run_folder, train

sys.path.insert(0, str(Path(__file__).resolve().parent))
import timing  # noqa: E402  (benchmarks/ is not a package)

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "train_throughput.json"


def tutorial_batches(images: torch.Tensor, batch_size: int,
                     generator: torch.Generator) -> Iterator[torch.Tensor]:
    """The tutorial's batches, epoch after epoch, taken by index from the in-memory uint8
    images [N, 1, S, S]: what ``DataLoader(shuffle=True, drop_last=True)`` over
    ``ToTensor()`` + ``Normalize((0.5,), (0.5,))`` yields, without decoding or workers.

    >>> x = torch.tensor([0, 255], dtype=torch.uint8).view(2, 1, 1, 1)
    >>> next(tutorial_batches(x, 2, torch.Generator().manual_seed(0))).flatten().sort().values
    tensor([-1.,  1.])
    """
    while True:
        order = torch.randperm(len(images), generator=generator).to(images.device)
        for k in range(len(images) // batch_size):
            idx = order[k * batch_size:(k + 1) * batch_size]
            yield (images[idx].float() / 255 - 0.5) / 0.5  # ToTensor, then Normalize(0.5, 0.5)


def reference_setup(images: torch.Tensor, args: argparse.Namespace, device: torch.device):
    """The tutorial's batches (from ``images``), networks (same sizes; D ends in a Sigmoid), Adam."""
    size = args.image_size
    G = models.Generator(100, 64, size).apply(models.weights_init).to(device)
    D = nn.Sequential(models.Discriminator(64, size), nn.Sigmoid()).apply(models.weights_init)
    D = D.to(device)
    opt_G = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_D = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    loader = tutorial_batches(images, args.batch_size, torch.Generator().manual_seed(0))
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


def run_reference(setup, n: int) -> None:
    """``n`` tutorial iterations, the batches continuing from the previous call as one
    DataLoader iterator's would."""
    loader, G, D, opt_G, opt_D = setup
    for _ in range(n):
        reference_step(next(loader), G, D, opt_G, opt_D)


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
    batches_per_epoch = len(images) // cfg.batch_size
    epoch, pos = divmod(step, batches_per_epoch)
    if pos == 0 or "perm" not in s:
        s["perm"] = batches.epoch_permutation(len(images), cfg.seed, epoch).to(images.device)
    idx = s["perm"][pos * cfg.batch_size:(pos + 1) * cfg.batch_size]
    real = batches.real_batch(images, idx, cfg.channels_last)
    stats = train.train_step(s["nets"], real, batches.step_latents(cfg, step, s["noise"]),
                             s["autocast"])
    s["step"] += 1
    return stats.tolist()


def run_gan_lib(s: dict, n: int) -> None:
    for _ in range(n):
        gan_lib_iteration(s)


def step_flops(args: argparse.Namespace) -> int:
    """FLOPs of one gan_lib G+D training step (forward and backward), fp32 eager, counted once."""
    eager = argparse.Namespace(**{**vars(args), "compile": False})
    zeros = torch.zeros(args.batch_size, 1, args.image_size, args.image_size, dtype=torch.uint8)
    s = gan_lib_setup(zeros, eager, "fp32", torch.device("cpu"))
    with FlopCounterMode(display=False) as counter:
        gan_lib_iteration(s)
    return counter.get_total_flops()


def reference_step_flops(args: argparse.Namespace) -> int:
    """FLOPs of one tutorial-loop step (its G update also computes D's weight gradients)."""
    zeros = torch.zeros(args.batch_size, 1, args.image_size, args.image_size, dtype=torch.uint8)
    _, G, D, opt_G, opt_D = reference_setup(zeros, args, torch.device("cpu"))
    real = torch.zeros(args.batch_size, 1, args.image_size, args.image_size)
    with FlopCounterMode(display=False) as counter:
        reference_step(real, G, D, opt_G, opt_D)
    return counter.get_total_flops()


def contestants_record(args: argparse.Namespace, precisions: list[str], images: torch.Tensor,
                       device: torch.device) -> dict:
    """What each contestant gets, for the JSON: the same data, each its own code."""
    shared = {"data": f"the training split decoded once, before timing, into one "
                      f"{str(images.dtype).removeprefix('torch.')} tensor "
                      f"{list(images.shape)} on {device}, the same tensor for every contestant",
              "decoding or DataLoader workers in the timed loop": False,
              "threads": torch.get_num_threads(), "batch_size": args.batch_size,
              "warm_up": "one untimed iteration before each round"}
    out = {"reference fp32": {
        **shared, "code": "the PyTorch DCGAN tutorial's loop (reference_step)",
        "batches": "a fresh torch.randperm order each epoch, drop_last (DataLoader "
                   "shuffle=True); batch = images[idx].float() / 255, then (x - 0.5) / 0.5 "
                   "(ToTensor + Normalize((0.5,), (0.5,)))",
        "model": "same DCGAN sizes (latent 100, 64 channels); D ends in nn.Sigmoid",
        "loss": "nn.BCELoss; G's update backpropagates into D's weight gradients too",
        "optimizer": "Adam lr 2e-4 betas (0.5, 0.999)", "precision": "fp32",
        "memory_format": "contiguous", "compile": False, "host_syncs_per_step": 3}}
    for precision in precisions:
        out[f"gan_lib {precision}"] = {
            **shared, "code": "gan_lib.train.train_step, as train() runs it (gan_lib_iteration)",
            "batches": "gan_lib.batches.epoch_permutation(seed, epoch) order; "
                       "batches.real_batch: images[idx].float() / 127.5 - 1",
            "model": "gan_lib.train.build_nets (same DCGAN sizes); D returns logits",
            "loss": "binary_cross_entropy_with_logits; G's update computes G's gradients only",
            "optimizer": "Adam lr 2e-4 betas (0.5, 0.999)", "precision": precision,
            "memory_format": "channels_last" if args.channels_last else "contiguous",
            "compile": args.compile, "host_syncs_per_step": 1}
    return out


def provenance(device: torch.device) -> dict:
    """When, where and with what the numbers were measured."""
    return {"date": time.strftime("%Y-%m-%d %H:%M:%S %z"), **run_folder.versions(),
            "torch_fidelity": importlib.metadata.version("torch-fidelity"),
            "git_commit": run_folder.git_commit(), "machine": platform.machine(),
            "load_average_at_start": timing.load_average(),
            "processor": platform.processor(), "threads": torch.get_num_threads(),
            "device": str(device),
            "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "bf16_probe": bf16_probe(device)}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--source", default="phantom",
                   help="training images: phantom (default) | pneumoniamnist | a Kermany folder")
    p.add_argument("--iters", type=int, default=4, help="timed iterations per round and contestant")
    p.add_argument("--rounds", type=int, default=2, help="alternations of the contestants")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--device", default="auto")
    defaults = config.TrainConfig()
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction,
                   default=defaults.channels_last, help="gan_lib: channels_last memory format")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=defaults.compile,
                   help="gan_lib: torch.compile G and D")
    p.add_argument("--threads", type=int, help="torch intra-op threads of every contestant "
                   "(default: torch's choice)")
    p.add_argument("--json", type=Path, nargs="?", const=DEFAULT_JSON,
                   help=f"also write the results to this JSON file (no value: {DEFAULT_JSON})")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)  # every contestant runs in this process
    device = resolve_device(args.device)
    prov = provenance(device)  # before the timings: the load average at the start
    ds = data.load_dataset(args.source, split="train", image_size=args.image_size)
    images = ds.images.to(device)  # decoded once; every contestant indexes this tensor
    torch.manual_seed(0)
    ref = reference_setup(images, args, device)
    ours = {"fp32": gan_lib_setup(images, args, "fp32", device)}
    if bf16_probe(device) is not None:
        ours["bf16"] = gan_lib_setup(images, args, "bf16", device)
    # each contestant runs n iterations per call; one more before each round, untimed
    contestants = {"reference fp32": lambda n: run_reference(ref, n)}
    for precision, state in ours.items():
        contestants[f"gan_lib {precision}"] = lambda n, s=state: run_gan_lib(s, n)
    print(f"DCGAN {args.image_size}x{args.image_size}, batch {args.batch_size}, {len(images):,} "
          f"images ({ds.description}) held in memory as uint8 for every contestant, {device}, "
          f"{torch.get_num_threads()} threads; {args.rounds} rounds x {args.iters} timed "
          f"iterations each; gan_lib channels_last={args.channels_last}, compile={args.compile}")
    timed = timing.interleaved(
        {k: lambda run=run: run(args.iters) for k, run in contestants.items()}, args.rounds,
        warmup=0, untimed={k: lambda run=run: run(1) for k, run in contestants.items()})
    seconds = {name: sum(t) for name, t in timed.seconds.items()}
    rounds = []
    for r in range(args.rounds):
        per_step = {name: t[r] / args.iters for name, t in timed.seconds.items()}
        for name, t in per_step.items():
            print(f"  round {r + 1}: {name:15s} {t:7.3f} s/step", flush=True)
        ratios = {name: per_step["reference fp32"] / t for name, t in per_step.items()}
        rounds.append({"round": r + 1, "s_per_step": per_step, "ratio_vs_reference": ratios})
        print(f"  round {r + 1} vs reference: "
              + ", ".join(f"{k} {v:.2f}x" for k, v in ratios.items()), flush=True)
    flops, ref_flops = step_flops(args), reference_step_flops(args)
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
                    "latent_size": 100}
        out = {"benchmark": "train_throughput", "provenance": prov,
               "settings": settings,
               "data": {"source": ds.source, "description": ds.description, "kind": ds.kind,
                        "n_images": len(images), "fingerprint": ds.fingerprint,
                        "is_synthetic": bool(ds.is_synthetic)},
               "contestants": contestants_record(args, list(ours), images, device),
               "gflop_per_step": flops / 1e9, "gflop_per_step_reference": ref_flops / 1e9,
               "results": results, "rounds": rounds}
        if "gan_lib bf16" in results:
            out["ratio_gan_lib_bf16_over_fp32"] = bf16_fp32
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(storage.portable(out), indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
