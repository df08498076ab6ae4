"""The class-conditional quick run in numbers: intra-class FID/KID with floors, and TSTR.

Reads what ``make report PROFILE=quick CONDITIONAL=1 SOURCE=phantom`` left in the run folder
(``scores.json``: Table 1 with its per-class rows; ``utility.json``: the usefulness study) and,
when the last report was built from that run, the report's ``build.json`` (seconds per
notebook). It computes nothing itself: it gathers those numbers, with their provenance, into
one JSON file for the README's tables, and prints them as Markdown.

    make report PROFILE=quick CONDITIONAL=1 SOURCE=phantom      # ~1 h on the 2-core CPU
    .venv/bin/python benchmarks/conditional_quick.py --json benchmarks/results/conditional_quick.json
    .venv/bin/python benchmarks/conditional_quick.py --run NAME --json FILE   # another run
"""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path
from typing import Any

from gan_lib import config, storage
from gan_lib.gan import checkpoint, run_folder
from gan_lib.studies.utility import METRICS, WAYS
from gan_lib.studies.utility_tables import verdict


def per_class(scores: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per class: FID and KID of each snapshot, and the floor at the same n pair."""
    rows: dict[str, dict[str, Any]] = {}
    for r in scores["scores"]:
        name = r.get("class_name")
        if name is None or r["metric"] not in ("fid", "kid"):
            continue
        row = rows.setdefault(name, {"class": name, "fid": {}, "kid": {}, "kid_std": {}})
        key = "floor" if r["kind"] == "floor" else str(r["iteration"])
        row[r["metric"]][key] = r["value"]
        if r["metric"] == "kid":
            row["kid_std"][key] = r["std"]
        if r["kind"] == "generated":
            row["n_fake"], row["n_real"] = r["n_fake"], r["n_real"]
    return list(rows.values())


def overall(scores: dict[str, Any]) -> dict[str, Any]:
    """Table 1's all-class FID per snapshot and its held-out floor, for comparison."""
    fid = {str(r["iteration"]): r["value"] for r in scores["scores"]
           if r["metric"] == "fid" and r["kind"] == "generated" and r.get("class_name") is None}
    floor = next(r for r in scores["scores"] if r["metric"] == "fid" and r["kind"] == "floor"
                 and r.get("class_name") is None and "held out" in r["compared"])
    return {"fid": fid, "floor": floor["value"], "n_fake": floor["n_fake"],
            "n_real": floor["n_real"]}


def tstr(utility: dict[str, Any]) -> dict[str, Any]:
    """Mean and sd over seeds of each way's test scores, with the AUROC ratios."""
    ways = {w: {"n_train": utility["ways"][w]["n_train"],
                **{m: {"mean": utility["ways"][w]["mean"][m], "sd": utility["ways"][w]["sd"][m],
                       "per_seed": {seed: r[m] for seed, r in utility["ways"][w]["seeds"].items()}}
                   for m in METRICS}}
            for w in WAYS if w in utility["ways"]}
    return {"ways": ways, "ratios": utility["ratios"], "verdict": verdict(utility),
            "seeds": utility["seeds"],
            "test": utility["test"], "classifier": utility["classifier"],
            "snapshot_iteration": utility["iteration"], "weights": utility["generator"],
            "seconds_total": utility["seconds_total"]}


def markdown(result: dict[str, Any]) -> str:
    """The two tables, and how their numbers were made."""
    its = sorted(result["overall"]["fid"], key=int)
    lines = ["| class | " + " | ".join(f"FID it {i}" for i in its) + " | floor | n |",
             "| --- |" + " ---: |" * (len(its) + 2)]
    for row in result["per_class"]:
        lines.append(f"| {row['class']} | " + " | ".join(f"{row['fid'][i]:.1f}" for i in its)
                     + f" | {row['fid']['floor']:.2f} | {row['n_fake']} / {row['n_real']} |")
    lines += ["", "| trained on | n train | accuracy | balanced accuracy | AUROC |",
              "| --- | ---: | ---: | ---: | ---: |"]
    for way, v in result["tstr"]["ways"].items():
        cells = [f"{v[m]['mean']:.3f} ± {v[m]['sd']:.3f}" for m in METRICS]
        lines.append(f"| {way} | {v['n_train']} | " + " | ".join(cells) + " |")
    t = result["tstr"]
    lines += ["", f"Run {result['run']!r} (G conditioning: {result['g_conditioning']}); data: "
              f"{result['data']['description']}. FID: {result['extractor']}, weights "
              f"{result['weights']['origin']}, {result['precision']}; n generated / n real per "
              f"class as shown, floor = held-out real images of the class at the same n. TSTR: "
              f"{t['classifier']['n_parameters']:,}-parameter classifier, seeds {t['seeds']}, "
              f"{t['test']['n']} real test images; mean ± sd over seeds. {t['verdict']}"]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", default="quick-conditional")
    p.add_argument("--json", type=Path, help="write the gathered numbers with provenance here")
    args = p.parse_args()
    run_dir = config.RUNS_DIR / args.run
    scores = storage.read_json(run_dir / "scores.json")
    utility = storage.read_json(run_dir / "utility.json")
    meta = run_folder.load_run_config(run_dir)
    if not meta["config"].get("conditional"):
        raise SystemExit(f"run {args.run!r} is not class-conditional: nothing to gather")
    build_path = config.REPORTS_DIR / "build.json"
    build = storage.read_json(build_path) if build_path.is_file() else None
    if build is not None and build.get("command", {}).get("run") != args.run:
        build = None  # the last report was of another run
    result = {
        "benchmark": "conditional_quick",
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": (build or {}).get("command") or
        f"make report PROFILE=quick CONDITIONAL=1 SOURCE=phantom RUN={args.run}",
        "run": args.run, "config": meta["config"], "data": meta["data"],
        "g_conditioning": checkpoint.saved_config(meta)["g_conditioning"],
        "git_commit_of_run": meta.get("git_commit"), "git_commit": run_folder.git_commit(),
        "extractor": scores["extractor"], "weights": scores.get("weights"),
        "precision": scores.get("precision"), "sampling": scores["sampling"],
        "settings": scores["settings"],
        "overall": overall(scores), "per_class": per_class(scores), "tstr": tstr(utility),
        "report_stages": build and {s["notebook"]: s["seconds"] for s in build["stages"]},
    }
    print(markdown(result))
    if args.json:
        storage.write_json(args.json, storage.portable(result))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
