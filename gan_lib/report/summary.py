"""What happened, for the report's first page: each sentence and number read from the run's
result files (config.json, scores.json, audit.json, utility.json), none typed.

- :func:`setting_line`: what was trained on what, in one line;
- :func:`final_rows`: Table 1's final snapshot beside its floors at the same n pair;
- :func:`audit_verdict`: copying and fidelity in one sentence, by rules stated here;
- :func:`tstr_verdict`: a conditional run's train-on-synthetic, test-on-real result.

The rules are declared before any number is looked at: a copy rate is read against the 1% that
test images give by construction (one-sided binomial test, p < 0.01), C_T against -3 (it is a
z-score; Meehan et al. 2020); precision against the held-out real images' own precision.

Example:
    >>> copying({"feature (cosine)": {"copy_rate": 0.0, "n_fake": 32},
    ...          "pixel (RMS)": {"copy_rate": 0.0, "n_fake": 32}, "C_T": {"C_T": 6.2}})
    'no sign of copying (copy rate 0% in features and 0% in pixels, about 1% expected without copying; C_T 6.2)'
"""

from __future__ import annotations

from typing import Any

from scipy.stats import binomtest

from ..studies.utility_tables import verdict

EXPECTED_COPY_RATE = 0.01  # test images closer than the 1st percentile: 1% by construction
COPY_P = 0.01  # a copy rate this unlikely under 1% says "copies"
CT_COPYING = -3.0  # C_T is a z-score: below -3, the generated images sit closer than held-out ones
NOT_YET, CLOSE = 0.5, 0.8  # precision as a share of the held-out real images' own precision


def setting_line(run_cfg: dict[str, Any], epochs: float) -> str:
    """'Unconditional DCGAN, 64 x 64 px (crop), 600 iterations at batch 64 (7.4 epochs), ...'"""
    c = run_cfg["config"]
    kind = "Class-conditional" if c.get("conditional") else "Unconditional"
    extras = [f"DiffAugment ({c['augment']})"] if c.get("augment") else []
    extras += [f"EMA {c['ema_decay']}"] if c.get("ema_decay") else []
    return (f"{kind} DCGAN{' with ' + ', '.join(extras) if extras else ''}, "
            f"{c['image_size']} x {c['image_size']} px (made square by "
            f"'{c.get('resize', 'crop')}'), {c['iterations']:,} iterations at batch "
            f"{c['batch_size']} ({epochs:.1f} epochs), {run_cfg['precision']} on "
            f"{run_cfg['device']}, training seed {c['seed']}; scored at iterations "
            f"{', '.join(f'{s:,}' for s in c['snapshot_at'])}.")


def final_rows(scores: dict[str, Any]) -> list[dict[str, Any]]:
    """The final snapshot's FID and KID (all classes) and every floor, each with its n pair and
    whether it is at the snapshot's n pair (only then is a floor a bound)."""
    fid = [r for r in scores.get("scores", []) if r["metric"] in ("fid", "kid")
           and not r.get("class_name") and r["kind"] in ("generated", "floor")]
    generated = [r for r in fid if r["kind"] == "generated" and r["value"] is not None]
    if not generated:
        return []
    last = max(r["iteration"] for r in generated)
    rows: dict[str, dict[str, Any]] = {}
    for r in fid:
        if r["kind"] == "generated" and r["iteration"] != last:
            continue
        label = (f"iteration {last:,}" if r["kind"] == "generated"
                 else f"floor: {r['compared']}")
        row = rows.setdefault(label, {"row": label, "FID": None, "KID": None,
                                      "n pair": f"{r['n_fake']:,} vs {r['n_real']:,}",
                                      "bound": r["kind"] == "floor" and bool(r.get("same_n"))})
        row["FID" if r["metric"] == "fid" else "KID"] = r["value"]
    return sorted(rows.values(), key=lambda row: row["row"].startswith("floor"))  # snapshot first


def copying(memo: dict[str, Any]) -> str:
    """Whether the final snapshot copies training images, in words with its numbers."""
    spaces = {"features": memo["feature (cosine)"], "pixels": memo["pixel (RMS)"]}
    flagged = [name for name, m in spaces.items() if _too_many(m["copy_rate"], m["n_fake"])]
    ct = memo["C_T"]["C_T"]
    rates = " and ".join(f"{m['copy_rate']:.0%} in {name}" for name, m in spaces.items())
    numbers = (f"copy rate {rates}, about {EXPECTED_COPY_RATE:.0%} expected without copying; "
               f"C_T {ct:.1f}")
    if flagged or (ct == ct and ct < CT_COPYING):
        return f"signs of copying training images ({numbers})"
    return f"no sign of copying ({numbers})"


def _too_many(rate: float, n: int) -> bool:
    k = round(rate * n)
    return k > 0 and binomtest(k, n, EXPECTED_COPY_RATE, alternative="greater").pvalue < COPY_P


def audit_verdict(audit: dict[str, Any]) -> str:
    """One sentence: copying, then precision and recall of the final snapshot against what
    held-out real images reach at the same n."""
    sets = {s["set"]: s for s in audit["sets"]}
    final = sets[f"iteration {audit['memorization']['iteration']}"]
    real = sets.get("held-out train") or sets.get("test")
    share = final["precision"] / real["precision"] if real and real["precision"] else 0.0
    if share < NOT_YET:
        meaning = "most generated images are not yet inside the real images' neighbourhoods"
    elif share < CLOSE:
        meaning = ("fewer generated images than held-out real ones lie inside the real "
                   "images' neighbourhoods")
    else:
        meaning = ("generated images lie inside the real images' neighbourhoods about as "
                   "often as held-out real ones do")
    copies = copying(audit["memorization"])
    return (f"{copies[0].upper()}{copies[1:]}; precision {final['precision']:.2f} "
            f"and recall {final['recall']:.2f} (held-out real images: {real['precision']:.2f} "
            f"and {real['recall']:.2f}, n {final['n']:,} vs {final['n_real']:,}): {meaning}.")


def tstr_verdict(utility: dict[str, Any]) -> str:
    """A conditional run's usefulness in one sentence: TSTR's AUROC against TRTR's, and
    whether it is above chance (``studies.utility.verdict``'s rule)."""
    ways = utility["ways"]
    syn, real = ways["synthetic"]["mean"]["auroc"], ways["real"]["mean"]["auroc"]
    return (f"A pneumonia classifier trained on {ways['synthetic']['n_train']:,} generated "
            f"images reached AUROC {syn:.3f} on the {utility['test']['n']:,} real test images, "
            f"{syn / real:.2f} of the {real:.3f} it reached trained on as many real ones "
            f"(mean over seeds {utility['seeds']}). {verdict(utility)}")


__all__ = ["setting_line", "final_rows", "copying", "audit_verdict", "tstr_verdict"]
