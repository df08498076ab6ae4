"""How should a BatchNorm generator snapshot be sampled? eval vs batch statistics vs recalibrated.

G trains on batch statistics; its snapshot stores the BatchNorm running averages (momentum 0.1)
as they were at the end of training. For every snapshot of one run this script generates the
same ``n_fake`` latents (latent i = row i of ``torch.randn(n, z_dim, seed 1234)``) with the same
weights in each sampling mode:

- ``eval``:     G.eval() with the stored running averages (what the project did until now);
- ``batch``:    G.train() under no_grad: batch statistics, latents fed in consecutive batches of
                the run's training batch size;
- ``recal-K``:  ``sampling.recalibrate_batchnorm(G, batches=K, batch_size=<training batch size>,
                seed=RECAL_SEED)``: an eval-mode copy whose running statistics were re-estimated
                on its own weights over K batches of fresh latents.

Each set is converted with ``models.to_uint8`` and scored (fp32 Inception, the profile's KID
settings) with FID and KID against the cached features of ``n_real`` real training images
(the seeded subset ``features.real_features`` picks). The floor is real vs real at the same
n pair: ``n_fake`` other real training images, held out of the reference set exactly as Table 1's
floor holds them out (``features.real_features(..., offset=n_real)``), against the same reference. The run is trained first when missing (resumed when
unfinished, reused when complete), e.g. runs/bn-quick.

    .venv/bin/python benchmarks/bn_sampling.py --profile quick --json benchmarks/results/bn_sampling_quick.json
    .venv/bin/python benchmarks/bn_sampling.py --profile paper --json benchmarks/results/bn_sampling_paper.json
    GAN_LIB_HOME=/tmp/bnhome .venv/bin/python benchmarks/bn_sampling.py --profile smoke \\
        --run bn-smoke-check --n-fake 32 --n-real 64                          # tiny check, ~2 min

Cost on a 2-core CPU: training (quick ~6-10 min, paper ~40-60 min in bf16) plus Inception at
~10-17 img/s over (2 + len(recal)) x n_fake images per snapshot, n_fake floor images and (once,
then cached) n_real reference images, plus 2-24 s per 2048-d FID.
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import importlib.metadata
import json
import platform
import sys
import warnings
from pathlib import Path
from typing import Any

import torch

from gan_lib import config, metrics, storage
from gan_lib.gan import models, run_folder, sampling, train
from gan_lib.metrics import extraction, feature_extractor, features

sys.path.insert(0, str(Path(__file__).resolve().parent))
import timing  # noqa: E402  (benchmarks/ is not a package)

LATENT_SEED = 1234  # latent i = row i of torch.randn(n, z_dim, generator=seed 1234)
RECAL_SEED = 4321  # latents of the recalibration batches: independent of the scored latents
FLOOR_SEED = 1  # the permutation choosing the floor's real images outside the reference set


# --- the run ------------------------------------------------------------------------------------


def ensure_run(args: argparse.Namespace) -> dict[str, Any]:
    """Train, resume or reuse runs/<name>; return what happened and how long it took."""
    cfg = config.make_train_config(args.profile, name=args.run, source=args.source,
                                   precision=args.precision)
    run_dir = config.RUNS_DIR / cfg.name
    final = run_dir / "snapshots" / f"G_iter_{cfg.iterations:06d}.pt"
    if final.is_file():
        return {"action": "reused", "train_seconds": None, "run_dir": run_dir}
    resume = run_dir.is_dir() and any(run_dir.iterdir())
    with timing.Stopwatch() as watch:
        train.train(cfg, resume=resume)
    seconds = round(watch.seconds, 1)
    return {"action": "resumed" if resume else "trained", "train_seconds": seconds,
            "run_dir": run_dir}


# --- sampling modes -----------------------------------------------------------------------------


@torch.no_grad()
def sample(G: torch.nn.Module, z: torch.Tensor, batch_size: int, train_mode: bool) -> torch.Tensor:
    """uint8 images of latents ``z``, fed in consecutive batches of ``batch_size``.

    ``train_mode``: batch statistics (on a copy, so the running averages of ``G`` stay as they
    are); otherwise G's running statistics (eval mode).
    """
    net = copy.deepcopy(models.unwrap(G))
    net.train(train_mode)
    dev = next(net.parameters()).device
    out = [models.to_uint8(net(z[i:i + batch_size].to(dev))).cpu()
           for i in range(0, len(z), batch_size)]
    return torch.cat(out)


def mode_generators(G: torch.nn.Module, recal: list[int],
                    batch_size: int) -> dict[str, tuple[torch.nn.Module, bool, float]]:
    """mode -> (network, train_mode, seconds spent preparing it)."""
    modes: dict[str, tuple[torch.nn.Module, bool, float]] = {"eval": (G, False, 0.0),
                                                              "batch": (G, True, 0.0)}
    for k in recal:
        with timing.Stopwatch() as watch:
            net = sampling.recalibrate_batchnorm(G, batches=k, batch_size=batch_size,
                                                 seed=RECAL_SEED)
        modes[f"recal-{k}"] = (net, False, watch.seconds)
    return modes


# --- scoring ------------------------------------------------------------------------------------


def score(ex: Any, feats: dict[str, torch.Tensor], real: dict[str, Any],
          score_cfg: config.ScoreConfig) -> dict[str, Any]:
    """FID and KID of a feature set against the real reference, with the n pair."""
    fid = metrics.frechet_distance(feats[ex.layers["fid"]], real["features"][ex.layers["fid"]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "KID subset size lowered": recorded below instead
        kid, kid_std, size = metrics.kid_from_features(
            feats[ex.layers["kid"]], real["features"][ex.layers["kid"]],
            score_cfg.kid_subsets, score_cfg.kid_subset_size)
    return {"fid": fid, "kid": kid, "kid_std": kid_std, "kid_subset_size": size,
            "kid_subsets": score_cfg.kid_subsets, "n_fake": len(feats[ex.layers["fid"]]),
            "n_real": real["n"]}


def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.threads:
        torch.set_num_threads(args.threads)
    recal = [int(k) for k in args.recal.split(",") if k.strip()]
    whole = timing.Stopwatch().start()
    trained = ensure_run(args)
    run_dir = run_folder.run_path(trained["run_dir"])
    run_cfg = run_folder.load_run_config(run_dir)
    batch_size, z_dim = run_cfg["config"]["batch_size"], run_cfg["config"]["z_dim"]
    image_size = run_cfg["config"]["image_size"]
    snapshots = run_folder.list_snapshots(run_dir)

    prof = config.make_score_config(args.profile)
    score_cfg = config.make_score_config(
        args.profile, n_fake=args.n_fake, n_real=args.n_real, metrics=("fid", "kid"),
        precision="fp32", kid_subset_size=min(prof.kid_subset_size, args.n_fake))
    ex = feature_extractor.load_extractor(score_cfg)
    ds = metrics.load_real(run_cfg, "train")
    if ds.fingerprint != run_cfg["data"].get("fingerprint"):
        warnings.warn("the data changed since the run was trained (fingerprint differs)",
                      stacklevel=1)
    real = features.real_features(ex, ds, score_cfg.n_real, image_size)
    n_real = real["n"]

    with timing.Stopwatch() as watch:
        # the held-out floor of gan_lib's Table 1: the next n_fake images of the same
        # permutation
        held = features.real_features(ex, ds, args.n_fake, image_size, offset=n_real)
        floor = score(ex, held["features"], real, score_cfg)
    floor.update(seconds=round(watch.seconds, 2),
                 compared=f"{held['n']} real train images held out of the reference "
                          f"vs the {n_real} reference images")
    print(f"floor (real vs real): FID {floor['fid']:.3f}  KID {floor['kid']:.5f}", flush=True)

    z = torch.randn(args.n_fake, z_dim, generator=torch.Generator().manual_seed(LATENT_SEED))
    rows = []
    for iteration, path in snapshots:
        # the weights with the running averages training kept: the "eval" mode; batch and
        # recal modes ignore stored statistics
        G = sampling.load_generator(path, ex.device, bn_stats="training")
        for mode, (net, train_mode, prep) in mode_generators(G, recal, batch_size).items():
            with timing.Stopwatch() as watch:
                imgs = sample(net, z, batch_size, train_mode)
                feats = extraction.extract_features(ex, imgs, f"iter {iteration} {mode}")
                rec = score(ex, feats, real, score_cfg)
            rec.update(iteration=iteration, snapshot=str(path), mode=mode,
                       seconds=round(prep + watch.seconds, 2))
            rows.append(rec)
            print(f"iteration {iteration:>5} {mode:>9}: FID {rec['fid']:8.3f}  "
                  f"KID {rec['kid']:.5f} +- {rec['kid_std']:.5f}  ({rec['seconds']} s)", flush=True)

    return {
        "benchmark": "bn_sampling",
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "torch_fidelity": importlib.metadata.version("torch-fidelity")},
        "threads": torch.get_num_threads(),
        "extractor": ex.describe(), "extractor_layers": ex.layers,
        "weights": {k: ex.weights.get(k) for k in ("path", "sha256", "origin")},
        "scoring": {**score_cfg.to_dict(), "device": str(ex.device),
                    "extractor_precision": ex.precision},
        "data": {"source": ds.source, "description": ds.description, "fingerprint": ds.fingerprint,
                 "n_images": len(ds.images), "is_synthetic": bool(ds.is_synthetic)},
        "run": {"name": run_dir.name, "dir": str(run_dir), "action": trained["action"],
                "train_seconds": trained["train_seconds"], "config": run_cfg["config"],
                "training_precision": run_cfg.get("precision")},
        "n_fake": args.n_fake, "n_real": n_real,
        "real_stats": {k: real[k] for k in ("path", "cache", "seconds")},
        "latents": {"seed": LATENT_SEED, "rule": "row i of torch.randn(n_fake, z_dim, "
                    "generator=torch.Generator().manual_seed(seed))"},
        "sampling_batch_size": batch_size,
        "recal": {"batches": recal, "batch_size": batch_size, "seed": RECAL_SEED},
        "floor": {**floor, "seed": FLOOR_SEED, "reference_subset_seed": features.SUBSET_SEED},
        "results": rows,
        "seconds": round(whole.elapsed, 1),
    }


# --- output -------------------------------------------------------------------------------------


def tables(res: dict[str, Any]) -> str:
    modes = list(dict.fromkeys(r["mode"] for r in res["results"]))
    iters = list(dict.fromkeys(r["iteration"] for r in res["results"]))
    cell = {(r["iteration"], r["mode"]): r for r in res["results"]}
    fl = res["floor"]
    out = []
    for title, fmt in (("FID", lambda r: f"{r['fid']:.2f}"),
                       ("KID (mean +- std)", lambda r: f"{r['kid']:.4f} +- {r['kid_std']:.4f}")):
        out += [f"\n{title}, n_fake {res['n_fake']} vs n_real {res['n_real']}:\n",
                "| iteration | " + " | ".join(modes) + " |",
                "| ---: | " + " | ".join("---:" for _ in modes) + " |"]
        out += [f"| {it} | " + " | ".join(fmt(cell[it, m]) for m in modes) + " |" for it in iters]
        out.append("| floor (real vs real) | " + " | ".join(fmt(fl) for _ in modes) + " |")
    run = res["run"]
    synthetic = ("synthetic phantom data: " if res["data"]["is_synthetic"]
                 and "synthetic" not in res["data"]["source"] else "")
    out += ["",
            f"n_fake {res['n_fake']} generated vs n_real {res['n_real']} real train images "
            f"(KID subsets {res['scoring']['kid_subsets']} x {res['floor']['kid_subset_size']}); "
            f"floor: {fl['compared']}, same value in every column.",
            f"Data: {synthetic}{res['data'].get('description', res['data']['source'])}, fingerprint {res['data']['fingerprint']}.",
            f"Run {run['name']} ({run['action']}; profile {run['config']['profile']}, "
            f"batch {run['config']['batch_size']}, {run['config']['iterations']} iterations, "
            f"{run['training_precision']}); sampling batch {res['sampling_batch_size']}, "
            f"recal seed {res['recal']['seed']}, latents seed {res['latents']['seed']}.",
            f"Extractor {res['extractor']} ({res['scoring']['extractor_precision']}), weights "
            f"{res['weights']['origin']} sha256 {str(res['weights']['sha256'])[:12]}; "
            f"total {res['seconds']} s" + (f", training {run['train_seconds']} s"
                                           if run["train_seconds"] is not None else "") + "."]
    return "\n".join(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--profile", choices=("quick", "paper", "smoke"), default="quick")
    p.add_argument("--run", help="run folder name under runs/ (default bn-<profile>)")
    p.add_argument("--source", default="phantom")
    p.add_argument("--precision", default="bf16", choices=config.PRECISIONS,
                   help="training precision if the run is trained here")
    p.add_argument("--n-fake", type=int, default=1024)
    p.add_argument("--n-real", type=int, default=2048,
                   help="reference real images (shared cache between profiles)")
    p.add_argument("--recal", default="16,32", help="comma-separated K of recal-K modes")
    p.add_argument("--json", type=Path, help="write all results with provenance here")
    p.add_argument("--threads", type=int, help="torch.set_num_threads")
    args = p.parse_args()
    args.run = args.run or f"bn-{args.profile}"
    res = run(args)
    print(tables(res))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(storage.portable(res), indent=2, default=str) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
