"""Every real-data number of the README: trains or reuses runs/real-*, scores, audits, tabulates.

On a folder of real chest X-rays (the Kermany layout, e.g. ../shared/data/chest_xray), three
studies, each written to its own JSON in benchmarks/results/:

    quick        the quick profile, training seeds 0, 1, 2 (runs real-quick-s<seed>): FID/KID
                 at 200/400/600 with the matched-n floors, and the audit of the final snapshot
                 -> real_quick.json
    paper        the paper profile (2,000 iterations, batch 128, 5,000 fakes), seed 0
                 (real-paper-s<seed>): FID/KID at 500/1000/2000 with floors, the audit
                 -> real_paper.json
    conditional  the class-conditional quick profile, seeds 0, 1, 2 (real-cond-s<seed>):
                 intra-class FID/KID with floors and the usefulness study (TSTR)
                 -> real_conditional.json

A run that exists and is finished is reused; one that is not is trained (or resumed). A quick run
may also be taken from the raw snapshots of an EMA run with the same settings
(real-sd-ema-all-s<seed>, benchmarks/small_data.py --prefix real-): training does not depend on the EMA, so
those are its weights (tests/test_train.py); its config.json says so. Scores and audits are
recomputed unless the run folder holds ones made under the current extraction settings.

    .venv/bin/python benchmarks/real_data.py --source ../shared/data/chest_xray --study quick
    .venv/bin/python benchmarks/real_data.py --source ../shared/data/chest_xray --study all

Numbers made here describe "Kermany train split, 224 px redistributed copy (aspect squashed),
resized to 64 px": not comparable with numbers made on the original files (FACTS.md).
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path
from typing import Any

import torch

from gan_lib import config, device, storage
from gan_lib.gan import run_folder, train
from gan_lib.studies import utility, utility_tables
from gan_lib.studies.classifier import ClassifierConfig

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchmark_runs as runs  # noqa: E402
import conditional_quick  # noqa: E402  (benchmarks/ is not a package)
from over_seeds import bound_table, cell, mean_sd  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
STUDIES = {  # study -> (profile, run name stem, TrainConfig overrides, default seeds)
    "quick": ("quick", "real-quick", {}, (0, 1, 2)),
    "paper": ("paper", "real-paper", {}, (0,)),
    "conditional": ("quick", "real-cond", {"conditional": True}, (0, 1, 2)),
}
CITATION = ("Kermany, Zhang, Goldbaum, Labeled Optical Coherence Tomography (OCT) and Chest "
            "X-Ray Images for Classification, Mendeley Data v2 (2018), doi:10.17632/rscbjbr9sj.2, "
            "CC BY 4.0")


def prepare(study: str, seed: int, source: str, profile: str | None = None) -> Path:
    """The finished run folder of ``study`` and ``seed``: reused, viewed, or trained.
    ``profile`` replaces the study's (e.g. smoke, to check this script in seconds)."""
    own, stem, overrides, _ = STUDIES[study]
    name = f"{stem}-s{seed}" if profile in (None, own) else f"{stem}-{profile}-s{seed}"
    profile = profile or own
    run_dir = config.RUNS_DIR / name
    cfg = config.make_train_config(profile, name=name, source=source, seed=seed, **overrides)
    if runs.finished(run_dir, cfg.iterations):  # trained, or a raw view made before
        return run_dir
    ema_twin = config.RUNS_DIR / f"real-sd-ema-all-s{seed}"
    if (study == "quick" and not run_dir.exists()
            and runs.finished(ema_twin, cfg.iterations, raw=True)):
        runs.raw_run(ema_twin, run_dir)
        print(f"{name}: the raw snapshots of {ema_twin.name}")
        return run_dir
    train.train(cfg, resume=(run_dir / "checkpoint.pt").is_file())
    return run_dir


def row(run_dir: Path, scores: dict[str, Any], audited: dict[str, Any]) -> dict[str, Any]:
    """One run's numbers: FID/KID per snapshot, the floors, the final snapshot's audit."""
    out: dict[str, Any] = {"run": run_dir.name, "fid": {}, "kid": {}, "kid_std": {}, "floors": {}}
    meta = run_folder.load_run_config(run_dir)
    out["seed"] = meta["config"]["seed"]
    out["segments"] = meta.get("segments", [])
    out["raw_snapshots_of"] = meta.get("raw_snapshots_of")
    for r in scores["scores"]:
        if r.get("class_name") is not None or r["metric"] not in ("fid", "kid"):
            continue
        if r["kind"] == "generated":
            out[r["metric"]][str(r["iteration"])] = r["value"]
            if r["metric"] == "kid":
                out["kid_std"][str(r["iteration"])] = r["std"]
            out["n_fake"], out["n_real"] = r["n_fake"], r["n_real"]
        elif r["kind"] == "floor" and r.get("value") is not None:
            which = "test" if r["compared"].startswith("real test") else "train"
            floor = out["floors"].setdefault(which, {"n_fake": r["n_fake"],
                                                     "n_real": r["n_real"],
                                                     "same_n": r.get("same_n"),
                                                     "compared": r["compared"]})
            floor[r["metric"]] = r["value"]
    final = audited["sets"][-1]
    memo = audited["memorization"]
    out["audit"] = {
        "iteration": final["iteration"], "n": final["n"], "n_real": final["n_real"],
        **{k: final[k] for k in ("precision", "recall", "density", "coverage")},
        "fid_inf": final["fid_vs_n"]["fid_inf"],
        "copy_rate_feature": memo["feature (cosine)"]["copy_rate"],
        "copy_rate_pixel": memo["pixel (RMS)"]["copy_rate"],
        "C_T": memo["C_T"]["C_T"], "C_T_cells_used": memo["C_T"]["cells_used"],
        "held_out": {k: audited["sets"][0][k] for k in ("precision", "recall", "density",
                                                         "coverage")}}
    return out


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and sd (ddof 1) over seeds of every FID, KID, floor and audit number."""
    out: dict[str, Any] = {"fid": {}, "kid": {}, "floors": {}, "audit": {}}
    for metric in ("fid", "kid"):
        for it in rows[0][metric]:
            out[metric][it] = mean_sd([r[metric][it] for r in rows])
    for which in rows[0]["floors"]:
        out["floors"][which] = {m: mean_sd([r["floors"][which][m] for r in rows])
                                for m in ("fid", "kid") if m in rows[0]["floors"][which]}
    for key, value in rows[0]["audit"].items():
        if isinstance(value, float):
            out["audit"][key] = mean_sd([r["audit"][key] for r in rows])
    return out


def provenance(run_dir: Path, scores: dict[str, Any]) -> dict[str, Any]:
    meta = run_folder.load_run_config(run_dir)
    return {"data": scores["data"], "citation": CITATION, "extractor": scores["extractor"],
            "extraction": scores.get("extraction"), "weights": scores["weights"],
            "score_settings": scores["settings"], "sampling": scores["sampling"],
            "train_config": {k: v for k, v in meta["config"].items() if k not in ("name", "seed")},
            "training_precision": meta["precision"], "git_commit": run_folder.git_commit(),
            "cpu_isa": device.cpu_isa(), "scoring_threads": torch.get_num_threads(),
            "versions": run_folder.versions(),
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}


def conditional_extra(run_dir: Path, scores: dict[str, Any],
                      tstr_seeds: tuple[int, ...]) -> dict[str, Any]:
    """Intra-class FID/KID with floors and the TSTR study of a conditional run (classifier
    seeds ``tstr_seeds``; reused from utility.json when it was made with them)."""
    path = run_dir / "utility.json"
    result = storage.read_json(path) if path.is_file() else None
    preset = ClassifierConfig.preset("quick")
    if (result is None or result["seeds"] != list(tstr_seeds)
            or result["classifier"]["config"] != preset.to_dict()):
        result = utility.utility_run(run_dir, preset, seeds=tstr_seeds)
    return {"per_class": conditional_quick.per_class(scores),
            "tstr": conditional_quick.tstr(result), "utility_seconds": result["seconds_total"]}


def run_study(study: str, seeds: list[int], source: str, profile: str | None = None,
              tstr_seeds: tuple[int, ...] = (0,)) -> dict[str, Any]:
    rows, scores = [], None
    for seed in seeds:
        run_dir = prepare(study, seed, source, profile)
        scores, audited = runs.scored(run_dir)
        r = row(run_dir, scores, audited)
        if study == "conditional":
            r.update(conditional_extra(run_dir, scores, tstr_seeds))
        if study == "paper" and (run_dir / "protocols.json").is_file():
            r["protocols_json"] = str(run_dir / "protocols.json")
        rows.append(r)
        print(f"{run_dir.name}: FID {r['fid']}, floors {r['floors']}", flush=True)
    result = {"study": study, "seeds": seeds, "rows": rows, "summary": summary(rows),
              **provenance(run_dir, scores),
              "command": " ".join(["benchmarks/real_data.py", *sys.argv[1:]])}
    if study == "conditional":
        result["tstr_pooled"] = pooled_tstr(rows)
    return result


def pooled_tstr(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Each way's AUROC / accuracy over every (training seed, classifier seed) pair."""
    out: dict[str, Any] = {}
    for way in rows[0]["tstr"]["ways"]:
        out[way] = {m: mean_sd([v for r in rows for v in
                                r["tstr"]["ways"][way][m]["per_seed"].values()])
                    for m in utility.METRICS}
    aurocs = [v for r in rows for v in r["tstr"]["ways"]["synthetic"]["auroc"]["per_seed"].values()]
    margin = 3 * utility_tables.chance_sd(rows[0]["tstr"]["test"]["class_counts"])
    out["verdict"] = ("above chance" if min(aurocs) > 0.5 + margin else
                      "below chance" if max(aurocs) < 0.5 - margin else "at chance")
    out["verdict_rule"] = ("synthetic-only AUROC of every (training seed, classifier seed) "
                           f"pair beyond 0.5 +/- {margin:.4f} (3 sd of one classifier's AUROC "
                           "at chance on the real test set)")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--source", help="a Kermany-layout folder of real X-rays (to make runs)")
    p.add_argument("--study", default="all", choices=[*STUDIES, "all"])
    p.add_argument("--seeds", help="comma-separated training seeds (default: the study's)")
    p.add_argument("--out", default=str(RESULTS), help="folder for real_<study>.json")
    p.add_argument("--profile", help="replace each study's profile (smoke: a quick check)")
    p.add_argument("--markdown", action="store_true", help="print the README tables of the "
                   "studies' JSON files in --out, with their bindings; compute nothing")
    p.add_argument("--tstr-seeds", default="0", help="classifier seeds per conditional run "
                   "(the spread over generator seeds is pooled across runs)")
    args = p.parse_args()
    for study in STUDIES if args.study == "all" else [args.study]:
        if args.markdown:
            print(markdown(storage.read_json(Path(args.out) / f"real_{study}.json")) + "\n")
            continue
        if not args.source:
            p.error("--source is needed to make or score runs")
        seeds = ([int(s) for s in args.seeds.split(",")] if args.seeds
                 else list(STUDIES[study][3]))
        result = run_study(study, seeds, args.source, args.profile,
                           tuple(int(s) for s in args.tstr_seeds.split(",")))
        storage.write_json(Path(args.out) / f"real_{study}.json", storage.portable(result))
        print(f"wrote {Path(args.out) / f'real_{study}.json'}")



# --- the README's tables, printed with their bindings (tests/readme_numbers.py) -------------


def markdown(result: dict[str, Any]) -> str:
    """The README's tables of one study's JSON, each bound column by column to its fields."""
    file, its = f"real_{result['study']}.json", list(result["rows"][0]["fid"])
    s = result["summary"]
    fid_rows = []
    for r in result["rows"]:
        at = f"rows[seed={r['seed']}]"
        fid_rows.append((str(r["seed"]), [(str(r["seed"]), f"{at}.seed")] + [
            cell(f"{at}.fid.{it}", r["fid"][it], 1) for it in its] + [
            cell(f"{at}.kid.{its[-1]}", r["kid"][its[-1]], 4)]))
    if len(result["rows"]) > 1:
        fid_rows.append(("mean", [("mean ± sd", "-")] + [
            cell(f"summary.fid.{it}.mean", s["fid"][it]["mean"], 1,
                  (f"summary.fid.{it}.sd", s["fid"][it]["sd"])) for it in its] + [
            cell(f"summary.kid.{its[-1]}.mean", s["kid"][its[-1]]["mean"], 4,
                  (f"summary.kid.{its[-1]}.sd", s["kid"][its[-1]]["sd"]))]))
    r0 = result["rows"][0]
    for which in ("train", "test"):
        f = r0["floors"][which]
        label = ("floor: test images" if which == "test" else
                 "floor: held-out training images" if f["same_n"] else
                 "floor: two halves of the reference set")
        fid_rows.append((which, [(f"{label} ({f['n_fake']} vs {f['n_real']})", "-")]
                         + [("", "-")] * (len(its) - 1) + [
            cell(f"rows[0].floors.{which}.fid", f["fid"], 1),
            (f"{f['kid']:.1e}", f"rows[0].floors.{which}.kid")]))
    fid_table = bound_table(file, ["training seed", *(f"FID at {it}" for it in its),
                              f"KID at {its[-1]}"], fid_rows)
    keys = [("precision", 3), ("recall", 3), ("density", 3), ("coverage", 3),
            ("copy_rate_feature", 3), ("copy_rate_pixel", 3), ("C_T", 2), ("fid_inf", 1)]
    audit_rows = []
    for r in result["rows"]:
        at = f"rows[seed={r['seed']}]"
        audit_rows.append((str(r["seed"]), [(str(r["seed"]), f"{at}.seed")] + [
            cell(f"{at}.audit.{k}", r["audit"][k], d) for k, d in keys]))
    if len(result["rows"]) > 1:
        audit_rows.append(("mean", [("mean ± sd", "-")] + [
            cell(f"summary.audit.{k}.mean", s["audit"][k]["mean"], d,
                  (f"summary.audit.{k}.sd", s["audit"][k]["sd"])) for k, d in keys]))
    held = r0["audit"]["held_out"]
    audit_rows.append(("held", [("held-out real images", "-")] + [
        cell(f"rows[0].audit.held_out.{k}", held[k], d) for k, d in keys[:4]]
        + [("", "-")] * 4))
    audit_table = bound_table(file, ["training seed", "precision", "recall", "density", "coverage",
                                "copy rate, features", "copy rate, pixels", "C_T", "FID_inf"],
                         audit_rows)
    out = [fid_table, "", audit_table]
    if result["study"] == "conditional":
        out += ["", tstr_markdown(result)]
    return "\n".join(out)


def tstr_markdown(result: dict[str, Any]) -> str:
    """Intra-class FID per class and seed, and the pooled TSTR table."""
    file, rows = f"real_{result['study']}.json", []
    its = [k for k in result["rows"][0]["per_class"][0]["fid"] if k != "floor"]
    for i, r in enumerate(result["rows"]):
        for j, c in enumerate(r["per_class"]):
            at = f"rows[{i}].per_class[{j}]"
            rows.append((f"{i}{c['class']}", [(str(r["seed"]), f"rows[{i}].seed"),
                                             (c["class"], "-")] + [
                cell(f"{at}.fid.{it}", c["fid"][it], 1) for it in its] + [
                cell(f"{at}.fid.floor", c["fid"]["floor"], 1)]))
    per_class = bound_table(file, ["training seed", "class", *(f"FID at {it}" for it in its),
                              "floor"], rows)
    pooled, rows = result["tstr_pooled"], []
    for way in (w for w in utility.WAYS if w in pooled):
        rows.append((way.replace(" ", "_").replace("(", "").replace(")", "").replace("+", "and"),
                     [(way, "-")] + [cell(f"tstr_pooled[{way}].{m}.mean", pooled[way][m]["mean"],
                                           3, (f"tstr_pooled[{way}].{m}.sd",
                                               pooled[way][m]["sd"]))
                                     for m in utility.METRICS]))
    tstr = bound_table(file, ["trained on", *utility.METRICS], rows)
    return per_class + "\n\n" + tstr


if __name__ == "__main__":
    main()
