"""What the section "Why FIDs disagree" costs and shows on a report that has been built.

Reads what the report pipeline wrote, measures nothing itself:

- ``runs/<run>/protocols.json`` (notebook 08, ``gan_lib.studies.score_protocols``): the FID
  of every snapshot and floor under each protocol, with its n pair, and the seconds the
  function took (Table 1's features already cached, as in the report);
- ``runs/<run>/scores.json`` (notebook 05): Table 1, and the seconds scoring took;
- ``reports/build.json``: the wall time of each notebook of that build (stage 08 = the section;
  it was 07 when benchmarks/results/fid_protocols_quick.json was made);
- ``benchmarks/results/real_quick_report.json``: the quick report built from nothing
  (benchmarks/report_timing.py), the reference the extra time is quoted against (the committed
  fid_protocols_quick.json was quoted against the phantom's, a file no script made, now gone);
- optionally (``--cold-scores``) a copy of scores.json from scoring the run with empty feature
  caches in the same session, so the extra time can also be set against scoring's own.

It writes one JSON with the table (n per cell), the seconds and the ratios, e.g.

    GAN_LIB_HOME=/work/wt16-home .venv/bin/python -m gan_lib report --run bn-quick
    GAN_LIB_HOME=/work/wt16-home .venv/bin/python benchmarks/fid_protocols.py --run bn-quick \\
        --note "..." --json benchmarks/results/fid_protocols_quick.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
from pathlib import Path

from gan_lib import config, report, storage

ROOT = Path(__file__).resolve().parents[1]


def summarise(run: str, note: str, cold_scores: str | None = None) -> dict:
    run_dir = config.RUNS_DIR / run
    result = storage.read_json(run_dir / "protocols.json")
    scores = storage.read_json(run_dir / "scores.json")
    build = storage.read_json(config.REPORTS_DIR / "build.json")
    reference = storage.read_json(ROOT / "benchmarks/results/real_quick_report.json")
    stages = {s["notebook"][:2]: s["seconds"] for s in build["stages"]}
    labels = {p["name"]: p["label"] for p in result["protocols"]}
    rows = [{"protocol": labels[r["protocol"]], "name": r["protocol"], "kind": r["kind"],
             "iteration": r["iteration"], "fid": r["value"], "n_fake": r["n_fake"],
             "n_real": r["n_real"], "distinct_fake": r.get("distinct_fake"),
             "distinct_real": r.get("distinct_real")} for r in result["records"]]
    table_1 = [{"iteration": r["iteration"], "compared": r["compared"], "fid": r["value"],
                "n_fake": r["n_fake"], "n_real": r["n_real"]}
               for r in scores["scores"] if r["metric"] == "fid"]
    extra = stages.get(report.PROTOCOLS_NOTEBOOK[:2])  # the section's notebook
    cold = storage.read_json(cold_scores)["seconds"] if cold_scores else None
    return {
        "what": (f"The section 'Why FIDs disagree' (notebook {report.PROTOCOLS_NOTEBOOK[:2]}) on "
                 "a quick-profile run of the phantom, from a report built on that run with `python -m gan_lib report --run "
                 f"{run}`: its table from runs/{run}/protocols.json, stage seconds from "
                 "reports/build.json, Table 1 from scores.json. " + note),
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "run": run, "extractor": result["extractor"], "weights": result["weights"],
        "data": result["data"], "settings": result["settings"], "n_pairs": result["n_pairs"],
        "protocols": result["protocols"], "records": rows, "consistency": result["consistency"],
        "table_1": table_1,
        "seconds": {"score_protocols": result["seconds"], "stage_07": extra,
                    "stage_05": stages.get("05"), "score_run_in_stage_05": scores["seconds"],
                    "score_run_cold_caches": cold,
                    "report_stages": stages, "images_extracted": result["images_extracted"]},
        "cost": {"reference": "benchmarks/results/real_quick_report.json (quick report from nothing)",
                 "reference_total_seconds": reference["total_seconds"],
                 "stage_07_share": None if extra is None else round(
                     extra / reference["total_seconds"], 4),
                 "score_protocols_share": round(
                     result["seconds"] / reference["total_seconds"], 4),
                 "stage_07_vs_cold_scoring": None if extra is None or cold is None else round(
                     extra / cold, 4)},
        "cost_percent": {"stage_07": None if extra is None else round(
            100 * extra / reference["total_seconds"], 2), "score_protocols": round(
            100 * result["seconds"] / reference["total_seconds"], 2)},
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True)
    p.add_argument("--note", default="", help="how the machine was loaded, what was cached")
    p.add_argument("--cold-scores", help="scores.json of the same run scored with empty caches")
    p.add_argument("--json", required=True, help="where to write the summary")
    args = p.parse_args()
    out = summarise(args.run, args.note, args.cold_scores)
    Path(args.json).write_text(json.dumps(storage.portable(out), indent=2) + "\n")
    print(json.dumps(out["seconds"], indent=2), json.dumps(out["cost"], indent=2))


if __name__ == "__main__":
    main()
