"""Does small-data training help? DiffAugment and an EMA generator, over several training seeds.

Trains the same run four ways (baseline, DiffAugment, EMA, both) with each of several seeds, on
the full training split and on a subset, with one profile, precision and data; scores every
snapshot with Table 1's rules (FID/KID against the reference set, floors at the same n pair)
and audits the final snapshot (copy rate, C_T). Each option is compared with the baseline of the
same seed and images, paired by seed, by the rule declared in over_seeds.PAIRED_RULE (applied to
the final snapshot's FID; the other snapshots are shown, not judged). Prints the tables (every
arm as mean ± sd over seeds; each option's paired difference); ``--json`` writes all of it
(real_small_data.json; small_data.json is the older one-seed study on the phantom), and
``--markdown`` prints the tables of a written JSON with their bindings (tests/readme_numbers.py).

    .venv/bin/python benchmarks/small_data.py --source ../shared/data/chest_xray --prefix real- \\
        --json                                     # benchmarks/results/real_small_data.json
    .venv/bin/python benchmarks/small_data.py --markdown   # its tables, for docs/small-data.md
    .venv/bin/python benchmarks/small_data.py --retime     # step cost timed again, machine idle
    .venv/bin/python benchmarks/small_data.py --profile smoke --sizes 64 --seeds 0,1 \\
        --settings baseline,diffaug --json /tmp/small_data_smoke.json    # a tiny check

Baseline and DiffAugment are not trained: they are the raw snapshots (snapshots/raw/) of the EMA
and "both" runs (benchmark_runs.raw_run), since training does not depend on the EMA. So EMA vs
baseline is a within-training comparison (the same training's raw and averaged weights), and
DiffAugment or both vs baseline compare two trainings with the same seed: both are paired, and
analysed as paired. Runs already finished are reused (runs/<prefix>sd-<setting>-<size>-s<seed>,
with the profile after "sd-" for other profiles), so the study can be stopped and restarted, and
``--runs-only`` prepares the runs in parallel processes before the tabulated call.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

import torch

from gan_lib import config, storage
from gan_lib import device as device_lib
from gan_lib.gan import run_folder, train
from gan_lib.gan.augment import Augment

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchmark_runs as runs  # noqa: E402  (benchmarks/ is not a package)
import timing  # noqa: E402
from over_seeds import PAIRED_RULE, bound_table, cell, mean_sd, paired_difference  # noqa: E402

# small_data.json: the one-seed study on the phantom, kept as the software check it was
DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "real_small_data.json"
SETTINGS = {
    "baseline": {},
    "diffaug": {"augment": "translation,cutout"},
    "ema": {"ema_decay": 0.999},
    "both": {"augment": "translation,cutout", "ema_decay": 0.999},
}
# the run whose raw snapshots (G's own weights beside its EMA) are each setting without EMA
TRAINED_WITH_EMA = {"baseline": "ema", "diffaug": "both"}
PAIRING = {"ema": "within one training: its raw and EMA weights",
           "diffaug": "two trainings with the same seed and images",
           "both": "two trainings with the same seed and images"}


def run_name(profile: str, setting: str, size: int | None, seed: int, prefix: str = "") -> str:
    """>>> run_name("quick", "ema", None, 2, "real-")
    'real-sd-ema-all-s2'
    """
    tail = f"{setting}-{size or 'all'}-s{seed}"
    return f"{prefix}sd-{tail}" if profile == "quick" else f"{prefix}sd-{profile}-{tail}"


def one_run(profile: str, setting: str, size: int | None, seed: int, precision: str,
            source: str, prefix: str = "") -> dict[str, Any]:
    """Train (or reuse, or take from its EMA run) one run, score and audit it; its result row."""
    name = run_name(profile, setting, size, seed, prefix)
    cfg = config.make_train_config(profile, name=name, source=source, precision=precision,
                                   subset=size, seed=seed, **SETTINGS[setting])
    run_dir = config.RUNS_DIR / name
    partner = (setting in TRAINED_WITH_EMA and
               config.RUNS_DIR / run_name(profile, TRAINED_WITH_EMA[setting], size, seed, prefix))
    if not runs.finished(run_dir, cfg.iterations):
        if partner and not run_dir.exists() and runs.finished(partner, cfg.iterations, raw=True):
            runs.raw_run(partner, run_dir)
        else:
            train.train(cfg, resume=(run_dir / "checkpoint.pt").is_file())
    source_of = storage.read_json(run_dir / "config.json").get("raw_snapshots_of")
    check = runs.raw_check(run_dir, partner, cfg.iterations) if partner and not source_of \
        else None
    scores, audited = runs.scored(run_dir)
    return {
        "setting": setting, "subset": size, "seed": seed, "run": run_dir.name,
        "config": cfg.to_dict(),
        "trained": f"raw snapshots of {source_of}" if source_of else "trained on its own",
        "raw_snapshots_of_ema_run_checked": check,
        **runs.result_fields(run_dir, scores, audited),
    }


def step_cost(profile: str, settings: dict[str, dict[str, Any]], precision: str,
              rounds: int = 5, steps: int = 8, reference: str = "baseline") -> dict[str, Any]:
    """Images/s of one training step under each setting, timed side by side in this process.

    The long runs share the machine with other work, so their wall time says little about what
    augmentation and EMA cost. Here each setting's networks take ``steps`` steps on one fixed
    batch, in interleaved rounds after a warm-up round; the median over rounds is reported with
    its ratio to the ``reference`` setting's, and the load average when timing began
    (``--retime`` times it again into a written JSON, for a machine that was busy the first
    time). ``settings``: name -> TrainConfig overrides.
    """
    load = timing.load_average()
    cfg0 = config.make_train_config(profile, precision=precision)
    device = torch.device("cpu")
    real = torch.rand(cfg0.batch_size, 1, cfg0.image_size, cfg0.image_size) * 2 - 1
    autocast = device_lib.autocast_context(precision, device)
    setups = {}
    for s, overrides in settings.items():
        cfg = config.make_train_config(profile, precision=precision, **overrides)
        setups[s] = (train.build_nets(cfg, device), Augment(cfg.augment, cfg.seed))
    z = torch.randn(cfg0.batch_size, cfg0.z_dim, generator=torch.Generator().manual_seed(0))

    def steps_of(nets: Any, aug: Augment) -> None:
        for k in range(steps):
            train.train_step(nets, real, z, autocast, aug, k).tolist()  # .tolist(): sync

    timed = timing.interleaved({s: lambda s=s: steps_of(*setups[s]) for s in setups}, rounds)
    out = {s: {"images_per_second": round(timed.rate(s, cfg0.batch_size * steps), 1),
               "rounds_seconds": [round(x, 3) for x in t]} for s, t in timed.seconds.items()}
    base = out.get(reference, {}).get("images_per_second")
    for v in out.values():
        v["vs_baseline"] = round(v["images_per_second"] / base, 3) if base else None
    return {**out, "timing": {
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "load_average_at_start": load, "threads": torch.get_num_threads(), "rounds": rounds,
        "steps_per_round": steps, "batch_size": cfg0.batch_size, "precision": precision}}


def fid_by_iteration(row: dict[str, Any]) -> dict[int, float]:
    """A run's FID per snapshot iteration."""
    return {r["iteration"]: r["value"] for r in row["scores"]
            if r["metric"] == "fid" and r["kind"] == "generated"}


def kid_final(row: dict[str, Any]) -> float:
    kid = {r["iteration"]: r["value"] for r in row["scores"]
           if r["metric"] == "kid" and r["kind"] == "generated"}
    return kid[max(kid)]


def floor(row: dict[str, Any], metric: str = "fid") -> dict[str, Any]:
    """The matched-n floor: held-out training images against the same reference."""
    return next(r for r in row["scores"] if r["metric"] == metric and r["kind"] == "floor"
                and r["same_n"])


def arm_id(setting: str, subset: int | None) -> str:
    return f"{setting}-{subset or 'all'}"


def arms(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each (setting, subset) over its seeds: FID per snapshot, final KID, copy rate and C_T
    as mean ± sd (ddof 1), each seed's final FID, and the floor (the same for every seed)."""
    out = []
    for key in dict.fromkeys((r["setting"], r["subset"]) for r in rows):
        mine = sorted((r for r in rows if (r["setting"], r["subset"]) == key),
                      key=lambda r: r["seed"])
        fids = [fid_by_iteration(r) for r in mine]
        out.append({
            "id": arm_id(*key), "setting": key[0], "subset": key[1],
            "seeds": [r["seed"] for r in mine],
            "fid": {str(it): mean_sd([f[it] for f in fids]) for it in sorted(fids[0])},
            "fid_final_per_seed": [f[max(f)] for f in fids],
            "kid_final": mean_sd([kid_final(r) for r in mine]),
            "copy_rate_feature": mean_sd([r["copy_rate"]["feature (cosine)"] for r in mine]),
            "C_T": mean_sd([r["C_T"]["C_T"] for r in mine]),
            "floor_fid": floor(mine[0])["value"],
        })
    return out


def compare(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each option against the baseline of the same seed and images: the paired FID difference
    (option - baseline; negative is better) at every snapshot, judged at the final one by
    :data:`PAIRED_RULE`. Seeds without both runs are left out (and not counted)."""
    out = []
    for row in rows:
        if row["setting"] == "baseline" or any(
                c["setting"] == row["setting"] and c["subset"] == row["subset"] for c in out):
            continue
        option = {r["seed"]: fid_by_iteration(r) for r in rows
                  if (r["setting"], r["subset"]) == (row["setting"], row["subset"])}
        base = {r["seed"]: fid_by_iteration(r) for r in rows
                if (r["setting"], r["subset"]) == ("baseline", row["subset"])}
        seeds = sorted(set(option) & set(base))
        if not seeds:
            continue
        iterations = sorted(option[seeds[0]])
        by_it = {str(it): paired_difference([option[s][it] for s in seeds],
                                            [base[s][it] for s in seeds]) for it in iterations}
        final = by_it[str(iterations[-1])]
        direction = ("lower FID" if final["ci95"][1] < 0 else "higher FID"
                     if final["ci95"][0] > 0 else "no change detected")
        out.append({"id": arm_id(row["setting"], row["subset"]), "setting": row["setting"],
                    "subset": row["subset"], "pairing": PAIRING.get(row["setting"], "by seed"),
                    "seeds": seeds, "final_iteration": iterations[-1], "by_iteration": by_it,
                    "final": final, "verdict": direction})
    return out


def subset_cell(subset: int | None, at: str) -> tuple[str, str]:
    """The subset column's cell: a size is bound to its field like every number; 'all' is text."""
    return (str(subset), f"{at}.subset") if subset else ("all", "-")


def markdown(result: dict[str, Any], file: str = "real_small_data.json") -> str:
    """The two tables of a small-data result (``file`` in benchmarks/results/), each cell bound
    to its field."""
    its = list(result["arms"][0]["fid"])
    rows = []
    for a in result["arms"]:
        at = f"arms[id={a['id']}]"
        step = (result.get("step_cost") or {}).get(a["setting"])
        rows.append((a["id"], [
            (a["setting"], "-"), subset_cell(a["subset"], at),
            *(cell(f"{at}.fid.{it}.mean", a["fid"][it]["mean"], 1,
                   (f"{at}.fid.{it}.sd", a["fid"][it]["sd"])) for it in its),
            cell(f"{at}.kid_final.mean", a["kid_final"]["mean"], 4,
                 (f"{at}.kid_final.sd", a["kid_final"]["sd"])),
            cell(f"{at}.floor_fid", a["floor_fid"], 2),
            cell(f"{at}.copy_rate_feature.mean", a["copy_rate_feature"]["mean"], 4),
            cell(f"{at}.C_T.mean", a["C_T"]["mean"], 2),
            cell(f"step_cost.{a['setting']}.vs_baseline", step["vs_baseline"], 2)
            if step and step.get("vs_baseline") else ("not timed", "-")]))
    arms_table = bound_table(file, ["setting", "subset", *(f"FID at {it}" for it in its),
                                    f"KID at {its[-1]}", "FID floor", "copy rate, features",
                                    "C_T", "step speed vs baseline"], rows)
    rows = []
    for c in result["comparisons"]:
        at = f"comparisons[id={c['id']}]"
        per_seed = c["final"]["per_seed"]
        rows.append((c["id"], [
            (c["setting"], "-"), subset_cell(c["subset"], at), (c["pairing"], "-"),
            *(cell(f"{at}.final.per_seed[{i}]", v, 1) for i, v in enumerate(per_seed)),
            cell(f"{at}.final.mean", c["final"]["mean"], 1, (f"{at}.final.sd", c["final"]["sd"])),
            cell(f"{at}.final.ci95[0]", c["final"]["ci95"][0], 1),
            cell(f"{at}.final.ci95[1]", c["final"]["ci95"][1], 1), (c["verdict"], "-")]))
    seeds = result["comparisons"][0]["seeds"] if result["comparisons"] else []
    comparison_table = bound_table(file, [
        "option", "subset", "paired as", *(f"seed {s}" for s in seeds), "mean ± sd",
        "95% interval from", "to", "verdict"], rows)
    return "\n".join([arms_table, "", comparison_table])


def provenance(rows: list[dict[str, Any]], precision: str, profile: str) -> str:
    """How the numbers were made, in words, for under the tables."""
    row = rows[0]
    cfg, fl = row["config"], floor(row)
    seeds = sorted({r["seed"] for r in rows})
    return (f"Data: {row['data']} (fingerprint {row['data_fingerprint']}). Profile {profile} "
            f"({cfg['iterations']} iterations, batch {cfg['batch_size']}, {cfg['image_size']} "
            f"px), {precision}, training seeds {seeds}, one run per arm and seed. FID/KID: "
            f"{row['extractor']}, weights SHA-256 "
            f"{row['weights_sha256'][:12]}, {fl['n_fake']} generated images against "
            f"{fl['n_real']} real training images (the full split's reference, also for the "
            f"subset runs); floor: {fl['compared']} at the same n pair. Sampling: "
            f"{row['sampling']}. Verdicts: {PAIRED_RULE}, at the final snapshot.")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--profile", default="quick", choices=tuple(config.PROFILES))
    p.add_argument("--settings", default=",".join(SETTINGS), help=f"of {list(SETTINGS)}")
    p.add_argument("--sizes", default="all,1000", help="'all' or a subset size, comma-separated")
    p.add_argument("--seeds", default="0,1,2", help="training seeds, comma-separated")
    p.add_argument("--precision", default="bf16", choices=config.PRECISIONS)
    p.add_argument("--source", default="phantom")
    p.add_argument("--prefix", default="", help="before each run's name (e.g. real-)")
    p.add_argument("--runs-only", action="store_true",
                   help="train (or derive), score and audit the runs, nothing else: to prepare "
                        "them in parallel processes before the tabulated call")
    p.add_argument("--json", type=Path, nargs="?", const=DEFAULT_JSON,
                   help=f"write all results with provenance here (alone: {DEFAULT_JSON.name})")
    p.add_argument("--markdown", type=Path, nargs="?", const=DEFAULT_JSON,
                   help="print the tables of this JSON with their bindings; compute nothing")
    p.add_argument("--retime", type=Path, nargs="?", const=DEFAULT_JSON,
                   help="time the step cost again (on an idle machine) and replace only that "
                        "part of this written JSON")
    args = p.parse_args()
    if args.retime:
        result = storage.read_json(args.retime)
        result["step_cost"] = step_cost(args.profile, SETTINGS, args.precision)
        storage.write_json(args.retime, storage.portable(result))
        print(json.dumps(result["step_cost"], indent=1), f"\nwrote {args.retime}", sep="\n")
        return
    if args.markdown:
        print(markdown(storage.read_json(args.markdown), args.markdown.name))
        return
    settings = [s.strip() for s in args.settings.split(",") if s.strip()]
    unknown = sorted(set(settings) - set(SETTINGS))
    if unknown:
        raise SystemExit(f"--settings: unknown {unknown}; expected some of {list(SETTINGS)}")
    sizes = [None if s.strip() == "all" else int(s) for s in args.sizes.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    whole = timing.Stopwatch().start()
    # timed first, on a machine at rest (the runs' own wall times share it with other work)
    cost = None if args.runs_only else step_cost(
        args.profile, {s: SETTINGS[s] for s in settings}, args.precision)
    # the EMA runs first: baseline and DiffAugment are then their raw snapshots, not retrained
    first = sorted(settings, key=lambda s: s in TRAINED_WITH_EMA)
    done = {(size, setting, seed): one_run(args.profile, setting, size, seed, args.precision,
                                           args.source, args.prefix)
            for seed in seeds for size in sizes for setting in first}
    if args.runs_only:
        return
    rows = [done[size, setting, seed] for size in sizes for setting in settings for seed in seeds]
    result = {
        "benchmark": "small_data", "rule": PAIRED_RULE,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(["benchmarks/small_data.py", *sys.argv[1:]]),
        "versions": run_folder.versions(), "git_commit": run_folder.git_commit(),
        "scoring_threads": torch.get_num_threads(), "cpu_isa": device_lib.cpu_isa(),
        "provenance": provenance(rows, args.precision, args.profile),
        "arms": arms(rows), "comparisons": compare(rows), "rows": rows, "step_cost": cost,
        "seconds": round(whole.elapsed, 1),
    }
    print(markdown(result, (args.json or DEFAULT_JSON).name), "", result["provenance"], sep="\n")
    if args.json:
        storage.write_json(args.json, storage.portable(result))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
