"""Scoring speed: gan_lib's FID against torch-fidelity with its feature cache on.

Both sides get the same advantage: the generated and real images are uint8 tensors in memory
(torch-fidelity reads them through a Dataset that indexes them, gan_lib streams them), they
run in one process on the same torch threads (torch-fidelity's DataLoader without worker
processes, ``save_cpu_ram=True``, unless ``--fidelity-workers``), with the same weights, in
fp32. By default the sizes are the quick profile's (``config.make_score_config("quick")``:
1,024 generated against 2,048 real images, batch 64, KID on subsets of 500), on the synthetic
phantom; ``--source`` takes a Kermany folder (e.g. ``../shared/data/chest_xray``) for real
images.

Part 1, one FID of the same fakes and reals, in one process (torch-fidelity first):

  torch-fidelity  ``torch_fidelity.calculate_metrics(input1=fake, input2=real, fid=True,
                  feature_extractor_weights_path=W, cache=True, input2_cache_name=...,
                  cache_root=<empty temporary folder>)``: its cache on, cold (it extracts both
                  sets and stores the real features).
  gan_lib         ``metrics.load_extractor`` + ``metrics.extract_features`` of both sets +
                  ``metrics.compare`` (torch-fidelity's FID function) with the same weights.

  It prints the seconds of each end to end and |FID difference| (must be < 1e-3 in fp32), then
  the images/s of the feature extraction alone (torch-fidelity's extractor and DataLoader path
  against gan_lib's, both building their extractor) and their ratio. The FID math, identical
  on both sides (~10-20 s for 2048-d on a 2-core CPU, whatever n), is left out of the ratio.
  Extraction rounds alternate which side goes first; the best of each counts (noisy machines).

Part 2, three generator snapshots of a throw-away run against the same real images:

  torch-fidelity, own cache   one call per snapshot with ``cache=True``,
                              ``input2_cache_name=...`` and ``cache_root`` in a fresh temporary
                              folder: cold (the first call extracts and stores the real
                              features, the other two load them) and warm (the same three calls
                              again, all loading them): like gan_lib, one pass over the real
                              images;
  gan_lib, cold cache         ``metrics.score_run`` with an empty cache: one pass over the real
                              images (plus the test split, for the real-vs-real floors, which
                              it also scores), then only the fakes of each snapshot;
  gan_lib, warm cache         ``metrics.score_run`` again: no real pass at all;
  torch-fidelity, no cache    only with ``--with-no-cache``: one ``cache=False`` call per
                              snapshot, the real images extracted again for every snapshot.

  The default metric in part 2 is KID, whose math is cheap, so the timings show extraction;
  a 2048-d FID adds ~15 s of eigen-decomposition per snapshot and floor on a 2-core CPU.
  Note that torch-fidelity's cache entry is keyed by the name it is given only (and the
  extractor's name), not by the images or the weights: reusing a name after either changed
  silently returns stale features. gan_lib's cache key includes both.

``--json FILE`` writes every printed number with its provenance (date, versions, threads,
device, weights origin and sha256, the exact settings) and, under ``contestants``, what each
side gets; ``--json`` alone writes benchmarks/results/score_throughput.json, the file
docs/benchmarks.md quotes.

    .venv/bin/python benchmarks/score_throughput.py --threads 2      # quick n: 1-2 h on 2 cores
    .venv/bin/python benchmarks/score_throughput.py --source ../shared/data/chest_xray --json
    .venv/bin/python benchmarks/score_throughput.py --n-fake 16 --n-real 32 --rounds 1   # smoke

Run it on an idle machine: other jobs on the same cores change both sides' times unevenly.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch_fidelity
from torch_fidelity.utils import create_feature_extractor, get_featuresdict_from_dataset

from gan_lib import config, data, metrics, storage
from gan_lib.device import cpu_isa, resolve_device
from gan_lib.gan import models, run_folder, sampling
from gan_lib.metrics import features, inception_weights

sys.path.insert(0, str(Path(__file__).resolve().parent))
import timing  # noqa: E402  (benchmarks/ is not a package)

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "score_throughput.json"


class Images(torch.utils.data.Dataset):
    """uint8 [N, 1, H, W] as torch-fidelity's input: one [3, H, W] uint8 tensor per item."""

    def __init__(self, images: torch.Tensor):
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.images[i].expand(3, -1, -1)


def fidelity(fake: torch.Tensor, real: torch.Tensor, args, weights: str,
             cache_root: str | None = None, **metric) -> dict:
    """torch_fidelity.calculate_metrics as a user calls it: its own file cache for the real
    images (``input2_cache_name``) under ``cache_root``, or (None) no cache. Without
    ``--fidelity-workers`` its DataLoader runs in this process (``save_cpu_ram=True``: no
    worker processes competing with the compute threads, as gan_lib has none)."""
    cache = {"cache": False} if cache_root is None else {
        "cache": True, "cache_root": cache_root, "input2_cache_name": "bench-real"}
    return torch_fidelity.calculate_metrics(
        input1=Images(fake), input2=Images(real), cuda=args.device.type == "cuda",
        batch_size=args.batch_size, feature_extractor_weights_path=weights, verbose=False,
        save_cpu_ram=not args.fidelity_workers, **cache, **metric)


def snapshot(path: Path, seed: int, image_size: int) -> Path:
    """A randomly initialised DCGAN generator snapshot (its images are what matters here)."""
    torch.manual_seed(seed)
    G = models.Generator(image_size=image_size).apply(models.weights_init)
    batches, batch_size = 2, 32  # BatchNorm statistics re-estimated as train() does, briefly
    G = sampling.recalibrate_batchnorm(G, batches, batch_size, seed)
    sampling.save_snapshot(G, path, iteration=seed,
                           sampling=sampling.sampling_record(batches, batch_size, seed))
    return path


def gan_lib_fid(fake: torch.Tensor, real: torch.Tensor, cfg: config.ScoreConfig) -> tuple:
    """(FID, {phase: seconds}) through gan_lib, the extractor built inside the timing."""
    with timing.Stopwatch() as building:
        ex = metrics.load_extractor(cfg)
    with timing.Stopwatch() as extracting:
        f_fake, f_real = metrics.extract_features(ex, fake), metrics.extract_features(ex, real)
    with timing.Stopwatch() as computing:
        fid = metrics.compare(ex, f_fake, f_real, cfg)["fid"]
    return fid, {"build extractor": building.seconds, "extract features": extracting.seconds,
                 "FID math": computing.seconds}


def fidelity_features(images: torch.Tensor, args, weights: str) -> torch.Tensor:
    """torch-fidelity's own extraction path (what calculate_metrics runs): extractor + loader."""
    fe = create_feature_extractor("inception-v3-compat", ["2048"], cuda=args.device.type == "cuda",
                                  feature_extractor_weights_path=weights, verbose=False)
    return get_featuresdict_from_dataset(Images(images), fe, args.batch_size,
                                         args.device.type == "cuda",
                                         not args.fidelity_workers, False)["2048"]


def part1(ds, args, weights: str) -> dict:
    """FID of the same fakes and reals: gan_lib vs torch-fidelity, images/s and agreement.

    End to end once (extractor, features, FID math; torch-fidelity with its cache on, cold, in
    an empty temporary folder), then feature extraction alone (the part
    that scales with n; the FID math is the same torch-fidelity function on both sides) in
    rounds that alternate which side goes first; the best round of each counts.
    """
    with tempfile.TemporaryDirectory() as tmp:
        fake = sampling.generate(snapshot(Path(tmp) / "G.pt", 1, args.image_size), args.n_fake,
                                 seed=0)
    real = ds.images[:args.n_real]
    both, n = torch.cat([fake, real]), len(fake) + len(real)
    cfg = config.ScoreConfig(metrics=("fid",), batch_size=args.batch_size, weights=weights,
                             device=str(args.device), precision="fp32")
    warm_up = metrics.load_extractor(cfg)  # weights into the page cache, oneDNN initialised
    metrics.extract_features(warm_up, fake[:2])
    with tempfile.TemporaryDirectory() as cache_root:
        with timing.Stopwatch() as watch:
            theirs = fidelity(fake, real, args, weights, cache_root=cache_root,
                              fid=True)["frechet_inception_distance"]
        t_theirs = watch.seconds
    ours, split = gan_lib_fid(fake, real, cfg)
    t_ours = sum(split.values())
    timed = timing.interleaved({  # torch-fidelity first in round 0, second in round 1, ...
        "torch-fidelity": lambda: fidelity_features(both, args, weights),
        "gan_lib": lambda: metrics.extract_features(metrics.load_extractor(cfg), both),
    }, args.rounds, warmup=0, alternate=True)
    times = timed.seconds
    x_theirs = timed.rate("torch-fidelity", n, best=True)  # the best round of each counts
    x_ours = timed.rate("gan_lib", n, best=True)
    return {"images": n, "n_fake": len(fake), "n_real": len(real), "rounds": args.rounds,
            "end_to_end_torch_fidelity_cache": "on, cold (empty cache_root)",
            "gan_lib_extractor": warm_up.describe(),
            "fid_torch_fidelity": theirs,
            "fid_gan_lib": ours, "abs_fid_difference": abs(ours - theirs),
            "end_to_end_seconds_torch_fidelity": t_theirs, "end_to_end_seconds_gan_lib": t_ours,
            "gan_lib_split_s": split, "extraction_seconds": times,
            "img_per_s_torch_fidelity": x_theirs, "img_per_s_gan_lib": x_ours,
            "ratio_gan_lib_over_torch_fidelity": x_ours / x_theirs}


def part2(ds, args, weights: str) -> dict:
    """Three snapshots: torch-fidelity without and with its own cache (cold, warm), and
    gan_lib's score_run with a cold and a warm cache."""
    chosen = tuple(args.cache_metrics.split(","))
    quick = config.make_score_config("quick")
    cfg = config.make_score_config(
        "quick", n_fake=args.n_fake, n_real=args.n_real, metrics=chosen,
        batch_size=args.batch_size, weights=weights, device=str(args.device), precision="fp32",
        kid_subset_size=min(quick.kid_subset_size, args.n_fake, args.n_real // 2))
    with tempfile.TemporaryDirectory() as tmp:
        config.CACHE_DIR = Path(tmp) / "cache"  # a fresh, empty real-statistics cache
        run_dir = Path(tmp) / "bench"
        paths = [snapshot(run_dir / "snapshots" / f"G_iter_{s:06d}.pt", s, args.image_size)
                 for s in (1, 2, 3)]
        tcfg = config.make_train_config("smoke", name="bench", image_size=args.image_size)
        storage.write_json(run_dir / "config.json", {"config": tcfg.to_dict(), "data": {
            "source": ds.source, "description": ds.description, "kind": ds.kind, "fingerprint": ds.fingerprint,
            "n_images": len(ds.images), "is_synthetic": ds.is_synthetic}})
        for split in ("train", "test"):  # decode the data into the fresh cache before timing
            with contextlib.suppress(FileNotFoundError, ValueError):  # a source without test/
                metrics.load_real(storage.read_json(run_dir / "config.json"), split)
        order = torch.randperm(len(ds.images),
                               generator=torch.Generator().manual_seed(features.SUBSET_SEED))
        real = ds.images[order[:args.n_real]]
        kid = {"kid_subset_size": cfg.kid_subset_size, "kid_subsets": cfg.kid_subsets}
        metric = {m: True for m in chosen} | (kid if "kid" in chosen else {})

        def fidelity_calls(cache_root: str | None) -> list[float]:
            """Seconds of each snapshot's generation + torch-fidelity call (the plain way)."""
            out = []
            for p in paths:
                with timing.Stopwatch() as watch:
                    fake = sampling.generate(p, args.n_fake, seed=cfg.seed)
                    fidelity(fake, real, args, weights, cache_root=cache_root, **metric)
                out.append(watch.seconds)
            return out

        def score_run() -> tuple[float, dict]:
            with timing.Stopwatch() as watch:
                scores = metrics.score_run(run_dir, cfg)
            return watch.seconds, scores

        tf_root = str(Path(tmp) / "fidelity_cache")  # torch-fidelity's own cache, empty
        calls = {"torch-fidelity, no cache": fidelity_calls(None)} if args.with_no_cache else {}
        calls["torch-fidelity, own cache, cold"] = fidelity_calls(tf_root)
        assert any(Path(tf_root).glob("bench-real-*.pt")), "torch-fidelity wrote no cache"
        t_cold, cold = score_run()
        calls["torch-fidelity, own cache, warm"] = fidelity_calls(tf_root)
        # warm = the real-image cache only: generated images are extracted again, as
        # torch-fidelity extracts them again (gan_lib would otherwise reuse its cached fakes)
        shutil.rmtree(config.CACHE_DIR / "fake_features", ignore_errors=True)
        t_warm, warm = score_run()
    assert cold["real_stats"]["cache"] == "built" and warm["real_stats"]["cache"] == "hit"
    seconds = {name: sum(c) for name, c in calls.items()}
    seconds |= {"gan_lib, cold cache": t_cold, "gan_lib, warm cache": t_warm}
    tf_cold, tf_warm = (seconds["torch-fidelity, own cache, cold"],
                        seconds["torch-fidelity, own cache, warm"])
    ratios = {"torch-fidelity own cache cold / gan_lib cold": tf_cold / t_cold,
              "torch-fidelity own cache warm / gan_lib warm": tf_warm / t_warm}
    if args.with_no_cache:
        no_cache = seconds["torch-fidelity, no cache"]
        ratios |= {"torch-fidelity no cache / gan_lib cold": no_cache / t_cold,
                   "torch-fidelity no cache / torch-fidelity own cache cold": no_cache / tf_cold}
    return {"metrics": list(chosen), "snapshots": len(paths), "n_fake": args.n_fake,
            "n_real": args.n_real, "kid_subset_size": cfg.kid_subset_size,
            "kid_subsets": cfg.kid_subsets, "seconds": seconds,
            "torch_fidelity_call_seconds": calls,
            "gan_lib_real_pass_seconds": cold["real_stats"]["seconds"],
            "ratios": ratios,
            "order": [*(k for k in calls if not k.endswith("warm")), "gan_lib, cold cache",
                      "torch-fidelity, own cache, warm", "gan_lib, warm cache"],
            "note": "gan_lib cold and warm also score the real-vs-real floors (two halves of the "
                    "real images; test vs train), which the torch-fidelity calls do not; each "
                    "torch-fidelity call builds its extractor, score_run builds it once"}


def provenance(args, weights: dict, ds) -> dict:
    """When, where and with what the numbers were measured."""
    return {"date": time.strftime("%Y-%m-%d %H:%M:%S %z"), **run_folder.versions(),
            "torch_fidelity": torch_fidelity.__version__, "git_commit": run_folder.git_commit(),
            "machine": platform.machine(), "cpu_isa": cpu_isa(),
            "load_average_at_start": timing.load_average(), "threads": torch.get_num_threads(),
            "device": str(args.device),
            "device_name": (torch.cuda.get_device_name(args.device)
                            if args.device.type == "cuda" else "cpu"),
            "weights": {k: weights.get(k) for k in ("origin", "sha256", "path", "has_logits")},
            "data": {"source": ds.source, "description": ds.description, "n_images": len(ds.images),
                     "fingerprint": ds.fingerprint, "is_synthetic": bool(ds.is_synthetic)}}


def contestants_record(args) -> dict:
    """What each side gets, for the JSON: the same images in memory, threads and weights."""
    shared = {"images": "uint8 tensors in this process's memory, the same for both sides",
              "threads": torch.get_num_threads(), "batch_size": args.batch_size,
              "precision": "fp32", "weights": "the same file (provenance.weights)"}
    workers = ("its DataLoader's default worker processes, min(4, 2 x CPUs) (save_cpu_ram=False)"
               if args.fidelity_workers else
               "no worker processes: its DataLoader runs in this process (save_cpu_ram=True)")
    return {
        "torch-fidelity": {
            **shared, "reads": "a Dataset indexing the tensors (one [3, H, W] uint8 item each)",
            "loader": workers, "extractor": "inception-v3-compat, built in every call",
            "cache": "part 1: on, cold (empty cache_root); part 2: on, input2_cache_name in "
                     "an empty cache_root, cold then warm" + (
                         "; and off (--with-no-cache)" if args.with_no_cache else "")},
        "gan_lib": {
            **shared, "reads": "the tensors streamed in batches (metrics.extract_features)",
            "loader": "none: no DataLoader, no worker processes",
            "extractor": "metrics.load_extractor: the same network and weights, channels_last, "
                         "BatchNorm folded where fp32 (part1.gan_lib_extractor says which)",
            "cache": "part 1: none; part 2: its real-statistics cache, empty then warm "
                     "(generated features extracted again in the warm run)"}}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line; sizes default to the quick profile's ScoreConfig."""
    quick = config.make_score_config("quick")
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n-fake", type=int, default=quick.n_fake,
                   help="generated images per snapshot (default: the quick profile's)")
    p.add_argument("--n-real", type=int, default=quick.n_real,
                   help="real images (default: the quick profile's)")
    p.add_argument("--batch-size", type=int, default=quick.batch_size)
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--rounds", type=int, default=2, help="part 1 rounds (order alternates)")
    p.add_argument("--source", default="phantom",
                   help="real images: phantom (default) | pneumoniamnist | a Kermany folder")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=0,
                   help="torch threads of both sides (0 = torch's default)")
    p.add_argument("--fidelity-workers", action="store_true",
                   help="let torch-fidelity's DataLoader start its default worker processes")
    p.add_argument("--with-no-cache", action="store_true",
                   help="part 2 also times torch-fidelity with its cache off")
    p.add_argument("--cache-metrics", default="kid", help="metrics of part 2, e.g. kid or fid,kid")
    p.add_argument("--skip-cache", action="store_true", help="run part 1 only")
    p.add_argument("--json", "--out", type=Path, nargs="?", const=DEFAULT_JSON,
                   help=f"also write the results as JSON here (no value: {DEFAULT_JSON})")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    args.device = resolve_device(args.device)
    weights = inception_weights.resolve_weights()
    ds = data.load_dataset(args.source, split="train", image_size=args.image_size)
    print(f"device {args.device}, {torch.get_num_threads()} threads; weights: {weights['origin']}"
          f" (sha256 {weights['sha256'][:12]}); real images: {ds.description}")
    settings = {k: str(v) if isinstance(v, Path | torch.device) else v
                for k, v in vars(args).items()}
    result = {"benchmark": "score_throughput", "provenance": provenance(args, weights, ds),
              "settings": settings, "contestants": contestants_record(args),
              "part1": part1(ds, args, weights["path"])}
    r = result["part1"]
    print(f"\nFID of {args.n_fake} fake vs {args.n_real} real images, end to end:")
    print(f"  torch-fidelity calculate_metrics {r['end_to_end_seconds_torch_fidelity']:6.1f} s"
          f"  FID {r['fid_torch_fidelity']:.6f}")
    split = ", ".join(f"{k} {v:.1f} s" for k, v in r["gan_lib_split_s"].items())
    print(f"  gan_lib                          {r['end_to_end_seconds_gan_lib']:6.1f} s"
          f"  FID {r['fid_gan_lib']:.6f}  ({split})")
    ok = "OK" if r["abs_fid_difference"] < 1e-3 else "FAIL"
    print(f"  |FID difference| {r['abs_fid_difference']:.2e} ({ok}: < 1e-3)")
    print(f"Feature extraction of the {r['images']} images, best of {r['rounds']} rounds:")
    print(f"  torch-fidelity {r['img_per_s_torch_fidelity']:6.2f} img/s, gan_lib "
          f"{r['img_per_s_gan_lib']:6.2f} img/s: "
          f"ratio {r['ratio_gan_lib_over_torch_fidelity']:.2f}x")
    if not args.skip_cache:
        result["part2"] = c = part2(ds, args, weights["path"])
        print(f"\nScoring {c['snapshots']} snapshots ({','.join(c['metrics'])}, n_fake "
              f"{c['n_fake']}, n_real {c['n_real']}), in the order run:")
        for name in c["order"]:
            per_call = c["torch_fidelity_call_seconds"].get(name)
            detail = (" (calls: " + ", ".join(f"{t:.1f}" for t in per_call) + " s)" if per_call
                      else f" (real pass {c['gan_lib_real_pass_seconds']:.1f} s)"
                      if name == "gan_lib, cold cache" else "")
            print(f"  {name:32s} {c['seconds'][name]:7.1f} s{detail}")
        for name, ratio in c["ratios"].items():
            print(f"  {name}: {ratio:.2f}x")
        print(f"  ({c['note']})")
    if args.json:
        storage.write_json(args.json, storage.portable(result))
        print(f"\nwrote {args.json}")
    else:
        print("\n" + json.dumps(result, default=str))


if __name__ == "__main__":
    main()
