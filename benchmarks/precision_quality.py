"""Does bf16 autocast cost quality, and what does it buy? fp32 vs bf16 over 3 training seeds.

The quick profile trained in bf16 (runs real-quick-s<seed>, benchmarks/real_data.py) and in fp32
(real-fp32-s<seed>, trained here when missing), same data, seeds and settings otherwise, scored
alike (Table 1's rules, the same real sets and latents). The design is paired (one fp32 and one
bf16 run per seed), so it is analysed as paired: per seed the difference bf16 - fp32 of the FID
at each snapshot, its mean, sd and 95% t-interval over seeds.

Verdict rule, declared before the runs: bf16 changes the FID at a snapshot if the 95% interval
of the paired difference excludes 0; otherwise no change is detected with this many seeds (the
interval's width says how large a change could still hide).

Speed: one G+D step (train.train_step on an in-memory batch) in fp32 and bf16, interleaved in
rounds in this one process, median images/s each and their ratio; the CPU's class is recorded.

    .venv/bin/python benchmarks/precision_quality.py --source ../shared/data/chest_xray --json
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path
from typing import Any

import torch

from gan_lib import config, data, device, storage
from gan_lib.gan import batches, run_folder, train

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchmark_runs as runs  # noqa: E402
import over_seeds  # noqa: E402  (benchmarks/ is not a package)
import real_data  # noqa: E402
import timing  # noqa: E402

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "precision_quality.json"


def fp32_run(seed: int, source: str) -> Path:
    name = f"real-fp32-s{seed}"
    cfg = config.make_train_config("quick", name=name, source=source, seed=seed,
                                   precision="fp32")
    return train.train(cfg, resume=(config.RUNS_DIR / name / "checkpoint.pt").is_file())


def step_speed(source: str, rounds: int, steps: int) -> dict[str, Any]:
    """Median images/s of train_step in fp32 and bf16, interleaved (same batch, same process)."""
    images = data.load_dataset(source, "train", 64).images
    cpu = torch.device("cpu")
    setups = {}
    for precision in ("fp32", "bf16"):
        cfg = config.make_train_config("quick", name="speed", source=source, precision=precision)
        setups[precision] = (cfg, train.build_nets(cfg, cpu),
                             device.autocast_context(precision, cpu), torch.Generator())
    real = batches.real_batch(images, torch.arange(64), True)

    def run(precision: str) -> None:
        cfg, nets, autocast, noise = setups[precision]
        for step in range(steps):
            train.train_step(nets, real, batches.step_latents(cfg, step, noise), autocast).tolist()

    # a warm-up call of each first (oneDNN primitives), then interleaved rounds
    timed = timing.interleaved({p: lambda p=p: run(p) for p in setups}, rounds)
    work = steps * 64  # images per round: the quick profile's batch of 64
    med = {p: timed.rate(p, work) for p in setups}
    return {"img_per_s": med, "bf16_over_fp32": med["bf16"] / med["fp32"], "rounds": rounds,
            "steps_per_round": steps, "batch_size": 64,
            "per_round": {p: timed.rates(p, work) for p in setups}}


def paired(rows: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Per snapshot: each seed's bf16 - fp32 FID, and over_seeds.paired_difference of them."""
    out = {}
    for it in rows["fp32"][0]["fid"]:
        a = [r["fid"][it] for r in rows["fp32"]]
        b = [r["fid"][it] for r in rows["bf16"]]
        out[it] = over_seeds.paired_difference(b, a)
    return out


def markdown(result: dict[str, Any]) -> str:
    """The README/docs table of a precision_quality.json, each cell bound to its field."""
    file, its = "precision_quality.json", list(result["paired"])
    rows = []
    for k, seed in enumerate(result["seeds"]):
        cells = [(str(seed), f"seeds[{k}]")]
        for precision in ("fp32", "bf16"):
            at = f"rows.{precision}[seed={seed}]"
            cells += [over_seeds.cell(f"{at}.fid.{it}", result["rows"][precision][k]["fid"][it], 1)
                      for it in its]
        cells += [over_seeds.cell(f"paired.{it}.per_seed[{k}]",
                                  result["paired"][it]["per_seed"][k], 1) for it in its]
        rows.append((str(seed), cells))
    mean = [("mean ± sd", "-")]
    for precision in ("fp32", "bf16"):
        s = result["summary"][precision]["fid"]
        mean += [over_seeds.cell(f"summary.{precision}.fid.{it}.mean", s[it]["mean"], 1,
                                 (f"summary.{precision}.fid.{it}.sd", s[it]["sd"])) for it in its]
    mean += [over_seeds.cell(f"paired.{it}.mean", result["paired"][it]["mean"], 1,
                             (f"paired.{it}.sd", result["paired"][it]["sd"])) for it in its]
    rows.append(("mean", mean))
    header = ["training seed", *(f"fp32 FID at {it}" for it in its),
              *(f"bf16 FID at {it}" for it in its), *(f"bf16 - fp32 at {it}" for it in its)]
    table = over_seeds.bound_table(file, header, rows)
    verdicts = "; ".join(
        f"at {it}: {d['verdict']} (95% interval {d['ci95'][0]:.1f}<!-- n: paired.{it}.ci95[0] -->"
        f" to {d['ci95'][1]:.1f}<!-- n: paired.{it}.ci95[1] -->)"
        for it, d in result["paired"].items())
    return (f"{table}\n\n<!-- numbers: benchmarks/results/{file} -->\n"
            f"Verdicts by the declared rule (bf16 - fp32): {verdicts}.")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--source", help="a Kermany-layout folder of real X-rays (to make runs)")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--json", nargs="?", const=str(DEFAULT_JSON))
    p.add_argument("--markdown", nargs="?", const=str(DEFAULT_JSON),
                   help="print the table of this JSON with its bindings; compute nothing")
    args = p.parse_args()
    if args.markdown:
        print(markdown(storage.read_json(Path(args.markdown))))
        return
    if not args.source:
        p.error("--source is needed to train and score runs")
    seeds = [int(s) for s in args.seeds.split(",")]
    rows: dict[str, list[dict[str, Any]]] = {"bf16": [], "fp32": []}
    for seed in seeds:
        for precision, run_dir in (("bf16", real_data.prepare("quick", seed, args.source)),
                                   ("fp32", fp32_run(seed, args.source))):
            meta = run_folder.load_run_config(run_dir)
            if meta["precision"] != precision:
                raise SystemExit(f"{run_dir} was trained in {meta['precision']}, not {precision}")
            scores, audited = runs.scored(run_dir)
            rows[precision].append(real_data.row(run_dir, scores, audited))
    speed = step_speed(args.source, args.rounds, args.steps)
    differences = paired(rows)
    result = {
        "what": "bf16 vs fp32 training, quick profile, paired by training seed, real images",
        "rule": over_seeds.PAIRED_RULE, "seeds": seeds, "rows": rows, "paired": differences,
        "summary": {p: real_data.summary(r) for p, r in rows.items()}, "speed": speed,
        **real_data.provenance(run_dir, scores),
        "command": " ".join(["benchmarks/precision_quality.py", *sys.argv[1:]]),
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    for it, d in differences.items():
        print(f"iteration {it}: bf16 - fp32 FID per seed {[round(x, 1) for x in d['per_seed']]},"
              f" mean {d['mean']:.1f} (95% CI {d['ci95'][0]:.1f} .. {d['ci95'][1]:.1f}): "
              f"{d['verdict']}")
    print(f"step speed bf16 / fp32: {speed['bf16_over_fp32']:.2f}x on {device.cpu_isa()}")
    print(markdown(result))
    if args.json:
        storage.write_json(Path(args.json), storage.portable(result))


if __name__ == "__main__":
    main()
