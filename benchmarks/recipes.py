"""A modern recipe beside the report's DCGAN: each training option alone and together, over seeds.

Trains each arm with each training seed on the real X-rays at one profile's length (the quick
profile by default), with one precision fixed for every arm (``--precision``, recorded), and
scores every snapshot with Table 1's rules (FID/KID against the reference set, floors at the
same n pair) and audits the final one (precision, recall, density, coverage, copy rate, C_T).
Every arm is compared with the DCGAN of the same seed, paired by seed, by the rule declared in
over_seeds.PAIRED_RULE, at the final snapshot:

- at equal iterations: arm's FID at the last snapshot minus the DCGAN's there;
- at equal CPU seconds: the step cost of every arm is timed side by side in this process
  (interleaved rounds, small_data.step_cost: the runs' own wall times share the machine with
  other work); an arm that is r times slower per step is read at its last snapshot at or below
  final / r iterations, against the DCGAN's final snapshot (an arm that is faster is read at
  its final snapshot against the DCGAN's last snapshot at or below final * r). So an option
  that doubles the step cost must win at half the iterations too.

Runs are runs/<prefix>rc-<arm>-s<seed> (the profile after "rc-" unless quick); a finished run is
reused and an interrupted one resumed, so the screen can be stopped and restarted; arms run in
the order given, seed by seed, so whatever finishes is usable. ``--json`` writes
benchmarks/results/real_recipes.json; ``--markdown`` prints its tables with their bindings.

    .venv/bin/python benchmarks/recipes.py --source ../shared/data/chest_xray --prefix real- \\
        --arms dcgan,recipe --json
    .venv/bin/python benchmarks/recipes.py --markdown       # tables for docs/recipes.md
    .venv/bin/python benchmarks/recipes.py --profile smoke --source phantom --arms dcgan,hinge \\
        --seeds 0,1 --json /tmp/recipes_smoke.json          # a tiny check
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path
from typing import Any

import torch

from gan_lib import config, storage
from gan_lib import device as device_lib
from gan_lib.gan import run_folder, train

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchmark_runs as runs  # noqa: E402  (benchmarks/ is not a package)
import small_data  # noqa: E402
import timing  # noqa: E402  (benchmarks/ is not a package)
from over_seeds import PAIRED_RULE, bound_table, cell, mean_sd, paired_difference  # noqa: E402

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "real_recipes.json"
DIFFAUG = {"augment": "translation,cutout"}
TTUR = {"lr": 2e-4, "lr_d": 4e-4, "beta1": 0.0, "beta2": 0.9}  # D twice G's rate; SAGAN's betas
# The recipe: what a GAN practitioner of today would train at this scale (docs/recipes.md says
# why each part), the profiles sn-hinge-quick / sn-hinge-paper; declared before any of its
# runs was scored.
RECIPE = dict(config.SN_HINGE)
ARMS: dict[str, dict[str, Any]] = {
    "dcgan": {},  # the report's DCGAN: the reference of every comparison
    "recipe": RECIPE,
    "resize": {"g_upsample": "resize"},
    "spectral": {"d_norm": "spectral"},
    "hinge": {"loss": "hinge"},
    "ttur": TTUR,
    "r1": {"r1_gamma": 0.1, "r1_every": 16},
    "mbstd": {"d_mbstd": True},
    "diffaug-ema": {**DIFFAUG, "ema_decay": 0.999},
    "recipe-no-ttur": {k: v for k, v in RECIPE.items() if k not in TTUR},
    "recipe-r1": {**RECIPE, "r1_gamma": 0.1, "r1_every": 16},
}
REFERENCE = "dcgan"
EXTRACTIONS = {"bf16-compiled": {"precision": "bf16", "compiled": True},
               "fp32": {"precision": "fp32", "compiled": False}, "default": {}}


def run_name(profile: str, arm: str, seed: int, prefix: str = "") -> str:
    """The run folder's name of one arm and seed.

    >>> run_name("quick", "recipe", 2, "real-")
    'real-rc-recipe-s2'
    """
    stem = f"{prefix}rc-" if profile == "quick" else f"{prefix}rc-{profile}-"
    return f"{stem}{arm}-s{seed}"


def one_run(profile: str, arm: str, seed: int, precision: str, source: str,
            prefix: str = "", extraction: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train (or reuse, or resume) one arm's run, score and audit it; its result row."""
    name = run_name(profile, arm, seed, prefix)
    cfg = config.make_train_config(profile, name=name, source=source, precision=precision,
                                   seed=seed, **ARMS[arm])
    run_dir = config.RUNS_DIR / name
    if not runs.finished(run_dir, cfg.iterations):
        train.train(cfg, resume=(run_dir / "checkpoint.pt").is_file())
    scores, audited = runs.scored(run_dir, **(extraction or {}))
    sets = {row["set"]: row for row in audited["sets"]}
    prdc_keys = ("precision", "recall", "density", "coverage")
    return {
        "arm": arm, "seed": seed, "run": name, "config": cfg.to_dict(),
        "prdc": {k: sets[f"iteration {cfg.iterations}"][k] for k in prdc_keys},
        "prdc_held_out_real": {k: sets["held-out train"][k] for k in prdc_keys},
        **runs.result_fields(run_dir, scores, audited),
    }


def fid_at(row: dict[str, Any], metric: str = "fid") -> dict[int, float]:
    """A run's FID (or KID) per snapshot iteration."""
    return {r["iteration"]: r["value"] for r in row["scores"]
            if r["metric"] == metric and r["kind"] == "generated"}


def equal_time_iterations(iterations: list[int], cost_ratio: float) -> tuple[int, int] | None:
    """(arm's iteration, reference's iteration) read at equal CPU seconds, from the snapshots
    ``iterations`` and the arm's step time over the reference's (``cost_ratio``): the slower
    side is read at its last snapshot whose cost fits in the faster side's final one.

    >>> equal_time_iterations([200, 400, 600], 1.4)   # 600 / 1.4 = 429: the arm at 400
    (400, 600)
    >>> equal_time_iterations([200, 400, 600], 0.5)   # the reference is the slower one
    (600, 200)
    >>> equal_time_iterations([200, 400, 600], 4.0) is None   # no snapshot early enough
    True
    """
    final = iterations[-1]
    if cost_ratio >= 1:
        fits = [it for it in iterations if it * cost_ratio <= final * (1 + 1e-9)]
        return (fits[-1], final) if fits else None
    fits = [it for it in iterations if it <= final * cost_ratio * (1 + 1e-9)]
    return (final, fits[-1]) if fits else None


def compare(rows: list[dict[str, Any]], cost: dict[str, Any]) -> list[dict[str, Any]]:
    """Each arm against the DCGAN of the same seed: the paired FID difference (arm - DCGAN;
    negative is better) at equal iterations (every snapshot, judged at the last) and at equal
    CPU seconds, both by :data:`PAIRED_RULE`. Seeds without both runs are left out."""
    by = {(r["arm"], r["seed"]): fid_at(r) for r in rows}
    out = []
    for arm in dict.fromkeys(r["arm"] for r in rows):
        seeds = sorted(s for a, s in by if a == arm and (REFERENCE, s) in by)
        if arm == REFERENCE or not seeds:
            continue
        iterations = sorted(by[arm, seeds[0]])
        by_it = {str(it): paired_difference([by[arm, s][it] for s in seeds],
                                            [by[REFERENCE, s][it] for s in seeds])
                 for it in iterations}
        ratio = cost[REFERENCE]["images_per_second"] / cost[arm]["images_per_second"]
        pair = equal_time_iterations(iterations, ratio)
        equal_time = None if pair is None else {
            "arm_iteration": pair[0], "dcgan_iteration": pair[1],
            **paired_difference([by[arm, s][pair[0]] for s in seeds],
                                [by[REFERENCE, s][pair[1]] for s in seeds])}
        final = iterations[-1]
        ratios = [by[arm, s][final] / by[REFERENCE, s][final] for s in seeds]
        out.append({"arm": arm, "seeds": seeds, "step_time_vs_dcgan": round(ratio, 3),
                    "fid_final_over_dcgan": {"per_seed": ratios, **mean_sd(ratios)},
                    "by_iteration": by_it, "final": by_it[str(iterations[-1])],
                    "equal_cpu_seconds": equal_time,
                    "verdict_equal_iterations": direction(by_it[str(iterations[-1])]),
                    "verdict_equal_cpu_seconds": direction(equal_time) if equal_time else
                    "no snapshot early enough to compare at equal CPU seconds"})
    return out


def direction(diff: dict[str, Any]) -> str:
    lo, hi = diff["ci95"]
    return "lower FID" if hi < 0 else "higher FID" if lo > 0 else "no change detected"


def arms(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each arm over its seeds: FID per snapshot, final KID, precision / recall / density /
    coverage and copy rate as mean ± sd (ddof 1), and the floor (the same for every seed)."""
    out = []
    for arm in dict.fromkeys(r["arm"] for r in rows):
        mine = sorted((r for r in rows if r["arm"] == arm), key=lambda r: r["seed"])
        fids, kids = [fid_at(r) for r in mine], [fid_at(r, "kid") for r in mine]
        floor = small_data.floor(mine[0])
        out.append({
            "id": arm, "settings": ARMS[arm], "seeds": [r["seed"] for r in mine],
            "fid": {str(it): mean_sd([f[it] for f in fids]) for it in sorted(fids[0])},
            "fid_final_per_seed": [f[max(f)] for f in fids],
            "kid_final": mean_sd([k[max(k)] for k in kids]),
            **{k: mean_sd([r["prdc"][k] for r in mine]) for k in mine[0]["prdc"]},
            "copy_rate_feature": mean_sd([r["copy_rate"]["feature (cosine)"] for r in mine]),
            "copy_rate_pixel": mean_sd([r["copy_rate"]["pixel (RMS)"] for r in mine]),
            "floor_fid": floor["value"], "floor_n": [floor["n_fake"], floor["n_real"]],
            "held_out_real_prdc": mine[0]["prdc_held_out_real"],
        })
    return out


def markdown(result: dict[str, Any], file: str = DEFAULT_JSON.name) -> str:
    """The arms table and the comparison table of a written result, each cell bound."""
    its = list(result["arms"][0]["fid"])
    rows = []
    for a in result["arms"]:
        at = f"arms[id={a['id']}]"
        rows.append((a["id"], [
            (a["id"], "-"), (str(len(a["seeds"])), f"{at}.fid.{its[-1]}.n_seeds"),
            *(cell(f"{at}.fid.{it}.mean", a["fid"][it]["mean"], 1,
                   (f"{at}.fid.{it}.sd", a["fid"][it]["sd"])) for it in its),
            cell(f"{at}.floor_fid", a["floor_fid"], 1),
            *(cell(f"{at}.{k}.mean", a[k]["mean"], 4) for k in
              ("precision", "recall", "density", "coverage", "copy_rate_feature")),
            cell(f"step_cost.{a['id']}.vs_baseline", result["step_cost"][a["id"]]["vs_baseline"],
                 2)]))
    arms_table = bound_table(file, ["arm", "seeds", *(f"FID at {it}" for it in its), "floor",
                                    "precision", "recall", "density", "coverage",
                                    "copy rate", "steps/s vs DCGAN"], rows)
    rows = []
    for c in result["comparisons"]:
        at = f"comparisons[arm={c['arm']}]"
        eq = c["equal_cpu_seconds"]
        final, eq = f"{at}.final", f"{at}.equal_cpu_seconds"
        rows.append((c["arm"], [
            (c["arm"], "-"),
            cell(f"{final}.mean", c["final"]["mean"], 1, (f"{final}.sd", c["final"]["sd"])),
            cell(f"{final}.ci95[0]", c["final"]["ci95"][0], 1),
            cell(f"{final}.ci95[1]", c["final"]["ci95"][1], 1),
            (c["verdict_equal_iterations"], "-"),
            *((cell(f"{eq}.arm_iteration", e["arm_iteration"], 0),
               cell(f"{eq}.dcgan_iteration", e["dcgan_iteration"], 0),
               cell(f"{eq}.mean", e["mean"], 1), cell(f"{eq}.ci95[0]", e["ci95"][0], 1),
               cell(f"{eq}.ci95[1]", e["ci95"][1], 1)) if (e := c["equal_cpu_seconds"])
              else [("-", "-")] * 5),
            (c["verdict_equal_cpu_seconds"], "-")]))
    comparison_table = bound_table(file, [
        "arm", "FID - DCGAN, equal iterations", "95% from", "to", "verdict",
        "arm at (equal CPU s)", "DCGAN at", "FID - DCGAN", "95% from", "to", "verdict"], rows)
    return "\n".join([arms_table, "", comparison_table])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--profile", default="quick", choices=tuple(config.PROFILES))
    p.add_argument("--arms", default="dcgan,recipe", help=f"of {list(ARMS)}")
    p.add_argument("--seeds", default="0,1,2", help="training seeds, comma-separated")
    p.add_argument("--precision", default="bf16", choices=("fp32", "bf16"),
                   help="fixed for every arm (never 'auto': a changed default must not mix arms)")
    p.add_argument("--source", default="phantom")
    p.add_argument("--extraction", default="bf16-compiled", choices=tuple(EXTRACTIONS),
                   help="Inception variant for every run's scores, fixed whatever this "
                        "machine's default (docs/metrics.md: bf16 compiled met the FID rule)")
    p.add_argument("--prefix", default="", help="before each run's name (e.g. real-)")
    p.add_argument("--runs-only", action="store_true", help="train, score and audit; no tables")
    p.add_argument("--json", type=Path, nargs="?", const=DEFAULT_JSON,
                   help=f"write all results with provenance here (alone: {DEFAULT_JSON.name})")
    p.add_argument("--markdown", type=Path, nargs="?", const=DEFAULT_JSON,
                   help="print the tables of this JSON with their bindings; compute nothing")
    args = p.parse_args()
    if args.markdown:
        print(markdown(storage.read_json(args.markdown), args.markdown.name))
        return
    names = [a.strip() for a in args.arms.split(",") if a.strip()]
    unknown = sorted(set(names) - set(ARMS))
    if unknown or REFERENCE not in names:
        raise SystemExit(f"--arms: unknown {unknown}; expected some of {list(ARMS)}, "
                         f"including the reference {REFERENCE!r}")
    seeds = [int(s) for s in args.seeds.split(",")]
    whole = timing.Stopwatch().start()
    extraction = EXTRACTIONS[args.extraction]
    rows = [one_run(args.profile, arm, seed, args.precision, args.source, args.prefix,
                    extraction) for seed in seeds for arm in names]
    if args.runs_only:
        return
    # R1 is lazy (every r1_every steps): time 16 steps a round so that its share is right
    cost = small_data.step_cost(args.profile, {a: ARMS[a] for a in names}, args.precision,
                                steps=16, reference=REFERENCE)
    result = {
        "benchmark": "recipes", "rule": PAIRED_RULE, "arms_declared": ARMS,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(["benchmarks/recipes.py", *sys.argv[1:]]),
        "versions": run_folder.versions(), "git_commit": run_folder.git_commit(),
        "threads": torch.get_num_threads(), "cpu_isa": device_lib.cpu_isa(),
        "precision": args.precision, "profile": args.profile,
        "extraction": rows[0]["extraction"],
        "arms": arms(rows), "comparisons": compare(rows, cost), "rows": rows,
        "step_cost": cost, "seconds": round(whole.elapsed, 1),
    }
    print(markdown(result, (args.json or DEFAULT_JSON).name))
    if args.json:
        storage.write_json(args.json, storage.portable(result))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
