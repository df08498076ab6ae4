"""Scores as people read them: the printed table, Table 1 (FID/KID), the IS table, captions.

Pure functions of a ``scores.json`` dict written by :func:`gan_lib.metrics.score_run`; every
table and caption says how its numbers were made (extractor, weights, data, n).

Example:
    >>> scores = metrics.score_run(config.RUNS_DIR / "smoke")  # doctest: +SKIP
    >>> fid_table(scores).columns.tolist()  # doctest: +SKIP
    ['iteration', 'compared', 'FID', 'KID mean', 'KID std', 'n_fake', 'n_real']
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd


def format_scores(scores: dict[str, Any]) -> str:
    """A printable table of scores.json, headed by how the numbers were computed."""
    rows = [{"name": r["name"], "compared": r["compared"],
             "value": "unavailable" if r["value"] is None else f"{r['value']:.4g}",
             "std": "" if r.get("std") is None else f"{r['std']:.2g}",
             "n_fake": r.get("n_fake") or "", "n_real": r.get("n_real") or "",
             "seconds": r.get("seconds", "")} for r in scores["scores"]]
    notes = dict.fromkeys(f"  {r['metric'].upper()}: {r['unavailable']}; {r.get('fix', '')}"
                          for r in scores["scores"] if r.get("unavailable"))
    real = scores["real_stats"]
    return "\n".join([f"Scores of run {scores['run']} ({scores['run_dir']}/scores.json)",
                      provenance(scores), f"Real statistics: cache {real['cache']} "
                      f"({real['seconds']:.1f} s), {real['path']}", "",
                      pd.DataFrame(rows).to_string(index=False),
                      *(["", "unavailable:", *notes] if notes else []),
                      f"total {scores['seconds']:.1f} s"])


def provenance(scores: dict[str, Any]) -> str:
    """One paragraph on how the scores were computed: extractor, weights, data, device."""
    weights, data, settings = scores["weights"], scores["data"], scores["settings"]
    sha = f"sha256 {weights['sha256'][:12]}" if weights.get("sha256") else "no weights file"
    file = Path(weights["path"]).name if weights.get("path") else "-"
    return (f"Extractor: {scores['extractor']}; weights: {weights['origin']} ({file}, {sha}). "
            f"Real images: {data['description']}, {data['split']} split (fingerprint "
            f"{str(data['fingerprint'])[:12]}, {data['n_images']} images at "
            f"{data['image_size']} px), n_real = {scores['real_stats']['n']}. Generated images: "
            f"n_fake = {settings['n_fake']} per snapshot, latents seed {settings['seed']}, "
            f"{scores.get('sampling', 'sampling rule not recorded')}. "
            f"Device {scores['device']}, {scores['precision']}.")


def fid_table(scores: dict[str, Any]) -> pd.DataFrame:
    """Table 1: FID and KID per snapshot iteration, then the real-vs-real floor rows.

    A conditional run's intra-class rows (each class's generated images against that class's
    real images, and its floor) follow, class by class, in a "class" column that an
    unconditional run's table does not have.
    """
    rows: dict[tuple, dict[str, Any]] = {}
    classes: list[str] = []
    for r in scores["scores"]:
        if r["metric"] not in ("fid", "kid") or r["kind"] == "real":
            continue
        name = r.get("class_name") or ""
        if name and name not in classes:
            classes.append(name)
        label = r["iteration"] if r["kind"] == "generated" else "floor (real vs real)"
        same_n = "" if r["kind"] == "generated" else {True: "yes", False: "no"}.get(
            r.get("same_n"), "")
        row = rows.setdefault((name, r["kind"] != "generated", r["compared"]), {
            "iteration": label, "class": name or "all", "compared": r["compared"], "FID": None,
            "KID mean": None, "KID std": None, "n_fake": r.get("n_fake"),
            "n_real": r.get("n_real"), "same n as snapshots": same_n})
        if r["value"] is None:
            row["FID" if r["metric"] == "fid" else "KID mean"] = "unavailable"
        elif r["metric"] == "fid":
            row["FID"] = r["value"]
        else:
            row["KID mean"], row["KID std"] = r["value"], r["std"]
    order = sorted(rows, key=lambda k: (classes.index(k[0]) + 1 if k[0] else 0, k[1],
                                        rows[k]["iteration"] if not k[1] else 0))
    columns = ["iteration", *(["class"] if classes else []), "compared", "FID", "KID mean",
               "KID std", "n_fake", "n_real", "same n as snapshots"]
    return pd.DataFrame([rows[k] for k in order], columns=columns)


def is_table(scores: dict[str, Any]) -> pd.DataFrame:
    """Inception Score of the generated images beside that of as many real images."""
    rows = [{"images": r["compared"], "IS mean": r["value"] if r["value"] is not None
             else "unavailable", "IS std": r.get("std"),
             "n": r.get("n_fake") or r.get("n_real"), "splits": r.get("is_splits"),
             "note": r.get("unavailable", "")}
            for r in scores["scores"] if r["metric"] == "is"]
    return pd.DataFrame(rows, columns=["images", "IS mean", "IS std", "n", "splits", "note"])


def table_caption(scores: dict[str, Any], table: str) -> str:
    """Caption of tables/fid.md ('fid') or tables/is.md ('is'): what, how, from which data."""
    s = scores["settings"]
    if table == "fid":
        notes = {f"{r['compared']}: {r['note']}." for r in scores["scores"] if r.get("note")}
        # The subset size is lowered to a smaller set's size (e.g. the test floor): name each.
        sizes = sorted({r["kid_subset_size"] for r in scores["scores"]
                        if r["metric"] == "kid" and r.get("kid_subset_size")})
        what = (f"Table 1. FID and KID ({scores['extractor']}; KID: mean and std over "
                f"{s['kid_subsets']} subsets of {' or '.join(map(str, sizes)) or '-'} images, "
                "the smaller set's size where it has fewer) of each generator snapshot "
                "against the reference set of real training images. The floor rows score real "
                "images in the generated images' place, computed the same way: training images "
                "held out of the reference, and test images; their n_fake and n_real are the "
                "sizes of the two real sets. FID is biased upwards at small n, by an amount that "
                "depends on both sizes, so a floor bounds a snapshot only at the same n pair "
                "('same n as snapshots'). " + " ".join(sorted(notes)))
    else:
        fixes = {r["fix"] for r in scores["scores"] if r["metric"] == "is" and r.get("fix")}
        what = (f"Inception Score (mean and std over {s['is_splits']} splits) of the final "
                "snapshot's images beside as many real training images; IS measures the "
                "confidence and variety of ImageNet-class predictions, so read the generated IS "
                "against the real one. "
                + "".join(f"IS unavailable: {fix}. " for fix in sorted(fixes)))
    return f"{what} {provenance(scores)}"


def fid_curve(scores: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """(rows {iteration, fid} of the snapshots, floors {label: FID}) for plots.plot_fid_curve:
    all classes together (a conditional run's per-class rows are Table 1's, not the curve's)."""
    fids = [r for r in scores["scores"] if r["metric"] == "fid" and r["value"] is not None
            and not r.get("class_name")]
    rows = [{"iteration": r["iteration"], "fid": r["value"]} for r in fids
            if r["kind"] == "generated"]
    if not rows:
        raise ValueError("no FID scores in these scores: score the run with 'fid' in metrics")
    floors = {f"{r['compared']}, n {r['n_fake']} vs {r['n_real']}": r["value"]
              for r in fids if r["kind"] == "floor"}
    return sorted(rows, key=lambda row: row["iteration"]), floors


def audit_table(audit: dict[str, Any]) -> pd.DataFrame:
    """Fidelity/diversity and FID_inf per snapshot, with the real-vs-real sets as references."""
    rows = []
    for r in audit["sets"]:
        fit = r["fid_vs_n"]
        rows.append({"set": r["set"], "n": r["n"], "n_real": r["n_real"],
                     "precision": r["precision"], "recall": r["recall"],
                     "density": r["density"], "coverage": r["coverage"],
                     "FID at n": fit["points"][-1]["fid"], "FID 95% low": fit["interval_95"][0],
                     "FID 95% high": fit["interval_95"][1], "FID_inf": fit["fid_inf"],
                     "fit residual": fit["residual"]})
    return pd.DataFrame(rows)


def memorization_table(audit: dict[str, Any]) -> pd.DataFrame:
    """Copy rate per space and C_T of the final snapshot, beside the test images' distances."""
    memo = audit["memorization"]
    rows = [{"measure": f"copy rate, {space}", "value": m["copy_rate"],
             "threshold (1st pct. of test)": m["threshold"], "n_fake": m["n_fake"],
             "n_test": m["n_reference"], "n_train": m["n_train"],
             "median NN distance, fakes": m["median_fake"],
             "median NN distance, test": m["median_test"]}
            for space, m in memo.items() if isinstance(m, dict) and "copy_rate" in m]
    ct = memo["C_T"]
    rows.append({"measure": f"C_T (Meehan et al. 2020; {ct['cells_used']} of {ct['cells']} "
                            "cells)", "value": ct["C_T"], "n_fake": ct["n_fake"],
                 "n_test": ct["n_heldout"], "n_train": ct["n_train"]})
    return pd.DataFrame(rows)


def audit_caption(audit: dict[str, Any], table: str) -> str:
    """Caption of the audit's tables: what each number is, its n, and how it was made."""
    s = audit["settings"]
    how = (f"Features: {audit['extractor']}, weights sha256 "
           f"{str(audit['weights'].get('sha256'))[:12]}; data: {audit['data']['description']}; "
           f"generated images: latents seed {s['seed']}, {audit['sampling']}.")
    if table == "audit":
        return (f"Audit of run '{audit['run']}'. Precision and recall (k={s['pr_k']}), density "
                f"and coverage (k={s['dc_k']}) of each set against the {s['n_real']} reference "
                "training images; the held-out training and test rows are real images in the "
                "generated images' place (the values a perfect generator would reach at this "
                "n). FID at n with a 95% interval for the spread due to the generated sample (FID "
                "± 1.96 sd, the sd from 20 halves drawn without replacement: the delete-half "
                "jackknife), and "
                "FID_inf from the least-squares fit FID_n = FID_inf + k/n over n/8, n/4, n/2, n "
                f"(Chong and Forsyth 2020). {how}")
    m = audit["memorization"]
    return (f"Memorization of run '{audit['run']}', final snapshot (iteration {m['iteration']}). "
            "Copy rate: share of generated images closer to their nearest training image than "
            "99% of test images (never trained on) are to theirs; about 1% for a generator "
            "that does not copy. Nearest among every training image of the run "
            f"({m['feature (cosine)']['n_train']}): cosine distance of Inception features, or "
            "root-mean-square difference of pixels. C_T: well below 0 signals copying, near 0 "
            "none. " + how)


def protocol_table(result: dict[str, Any]) -> pd.DataFrame:
    """FID of each snapshot and the floor under each protocol (rows), with its n pair and
    where the original report's FIDs fall against it (gan_lib.protocols)."""
    floor_col = "floor (real vs real)"
    verdicts = {c["protocol"]: c["verdict"] for c in result["consistency"]}
    rows = []
    for p in result["protocols"]:
        of_protocol = [r for r in result["records"] if r["protocol"] == p["name"]]
        n_fake, n_real = result["n_pairs"][p["n"]]
        row = {"protocol": p["label"], "n_fake": n_fake, "n_real": n_real}
        for it in result["iterations"]:  # text cells: numbers (4 significant digits) or why not
            value = next((r["value"] for r in of_protocol if r["iteration"] == it), None)
            row[f"iteration {it}"] = (f"{value:.4g}" if value is not None else
                                      "final only" if p["final_only"] else "unavailable")
        floor = next((r for r in of_protocol if r["kind"] == "floor"), None)
        row[floor_col] = ("unavailable" if floor is None or floor["value"] is None
                          else f"{floor['value']:.4g}" if floor.get("same_n", True)
                          else f"{floor['value']:.4g} ({floor['n_fake']} vs {floor['n_real']})")
        row["original's " + " / ".join(f"{v:g}" for v in result["original"]["fid"])] = \
            verdicts[p["name"]]
        rows.append(row)
    return pd.DataFrame(rows)


def protocol_notes(result: dict[str, Any]) -> pd.DataFrame:
    """What each protocol does to the images, and where the original's FIDs fall against it."""
    reasons = {c["protocol"]: c["reason"] for c in result["consistency"]}
    return pd.DataFrame([{"protocol": p["label"], "what it is": p["explain"],
                          "the original's FIDs against it": reasons[p["name"]]}
                         for p in result["protocols"]])


def protocol_provenance(result: dict[str, Any]) -> str:
    """How the protocols' numbers were made: run, extractor, weights, data, latents, device."""
    s, weights = result["settings"], result["weights"]
    return (f"Run '{result['run']}'; features: {result['extractor']}, weights {weights['origin']} "
            f"(sha256 {str(weights.get('sha256'))[:12]}); real images: "
            f"{result['data']['description']}, train split (fingerprint "
            f"{str(result['data']['fingerprint'])[:12]}); generated images: latents seed "
            f"{s['seed']}, {result['sampling']}; {result['device']}, {result['precision']}.")


def protocol_caption(result: dict[str, Any], table: str = "values") -> str:
    """Caption of the protocol tables: how every number was made, and what was not done."""
    orig, how = result["original"], protocol_provenance(result)
    if table == "notes":
        return ("What each protocol changes, and where each of the original report's FIDs "
                f"({' / '.join(f'{v:g}' for v in orig['fid'])} at iterations "
                f"{', '.join(map(str, orig['iterations']))}) falls against this run's values "
                "under it: below the real-vs-real floor (real images score more at that n "
                "pair), inside the measured range, or above every value measured. This says "
                "nothing about how the original numbers were computed. " + how)
    return ("FID of each snapshot under each protocol; every row gives its n pair (n_fake "
            "generated or held-out real images vs n_real reference training images), and "
            "its floor scores held-out training images in the generated images' place, made "
            "the same way (JPEG rows: real images keep their encoding, so their floor is that "
            "of the standard protocol at the same n pair). The JPEG and resize protocols "
            "extract every image afresh and score the final snapshot only ('final only'); "
            "compare them with the standard protocol at the same n pair. The last column "
            "places the original report's FIDs against the row's floor and highest value "
            f"(second table). Computed in {result['seconds']:.0f} s, {result['images_extracted']:,} "
            "images extracted beyond Table 1's cached features. " + how)


def protocol_points(result: dict[str, Any]) -> pd.DataFrame:
    """Long form of :func:`protocol_table` for plots: protocol, set, fid (measured cells only)."""
    labels = {p["name"]: p["label"] for p in result["protocols"]}
    return pd.DataFrame([{"protocol": labels[r["protocol"]], "fid": r["value"],
                          "set": (f"iteration {r['iteration']}" if r["kind"] == "generated"
                                  else "floor (real vs real)")}
                         for r in result["records"] if r["value"] is not None],
                        columns=["protocol", "set", "fid"])
