"""The usefulness study's results for people: verdicts in words, the table, the caption, and
the training curves as a long table (what :func:`gan_lib.studies.utility.tstr` returns, read).

Example:
    >>> chance_sd([50, 50]) < chance_sd([10, 10])
    True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd

from .utility import BASELINE, METRICS, WAYS

# Colour by what the images are, dashed at half size.
WAY_STYLE = {"real": ("C0", "-"), "synthetic": ("C1", "-"), "real + synthetic": ("C2", "-"),
             "real (half)": ("C0", "--"), "synthetic (half)": ("C1", "--")}


def cas_verdict(results: dict[str, Any]) -> str:
    """Whether G's images show the class they were asked for, in words with the numbers: the
    CAS AUROC of every seed against 0.5 +/- 3 sd at chance for a set of this size.

    >>> r = {"cas": {"n": 100, "seeds": {"0": {"auroc": 0.9}, "1": {"auroc": 0.95}}}}
    >>> cas_verdict(r).startswith("Asked for a class, G shows it")
    True
    """
    aurocs = [s["auroc"] for s in results["cas"]["seeds"].values()]
    n = results["cas"]["n"]
    margin = 3 * chance_sd([n // 2, n - n // 2])  # a balanced set of n: the wider band
    span = (f"CAS AUROC {min(aurocs):.3f} to {max(aurocs):.3f} over {len(aurocs)} seed(s); "
            f"chance 0.5 +/- {margin:.3f} (3 sd)")
    if min(aurocs) > 0.5 + margin:
        return f"Asked for a class, G shows it to a classifier of real X-rays ({span})."
    return (f"Asked for a class, G does not clearly show it to a classifier of real X-rays "
            f"({span}): the label barely changes what it draws.")


def chance_sd(class_counts: Sequence[int]) -> float:
    """The sd of one classifier's AUROC at chance on a test set of these class counts
    (Mann-Whitney U under the null: sqrt((n0 + n1 + 1) / (12 n0 n1)))."""
    n0, n1 = class_counts
    return math.sqrt((n0 + n1 + 1) / (12 * n0 * n1))


def verdict(results: dict[str, Any], way: str = "synthetic") -> str:
    """Whether ``way``'s test AUROC is above, at or below chance, in words with its numbers.

    Every seed's AUROC is compared with 0.5 +/- 3 sd of one classifier's AUROC at chance on
    this test set (:func:`chance_sd`): above it in every seed, below it in every seed, or not
    clearly either. Below chance is a finding, not noise: the classifier learned from the
    generated classes a difference that runs the other way in real images.
    """
    aurocs = [s["auroc"] for s in results["ways"][way]["seeds"].values()]
    margin = 3 * chance_sd(results["test"]["class_counts"])
    low, high = min(aurocs), max(aurocs)
    span = (f"AUROC {low:.3f}" if low == high else f"AUROC {low:.3f} to {high:.3f}") + \
        f" over {len(aurocs)} seed{'s' * (len(aurocs) > 1)}; chance 0.5 +/- {margin:.3f} (3 sd)"
    if low > 0.5 + margin:
        return f"Trained on {way} images, the classifier is above chance ({span})."
    if high < 0.5 - margin:
        return (f"Trained on {way} images, the classifier is below chance ({span}): it ranks "
                "the real test images the wrong way round, so what separates the generated "
                "classes runs the other way in real images (look at the samples per class).")
    return f"Trained on {way} images, the classifier is not clearly better than chance ({span})."


def results_table(results: dict[str, Any]) -> pd.DataFrame:
    """One row per way: n, class counts, mean and sd of each metric, AUROC vs real, seconds."""
    rows = []
    for way in [w for w in WAYS if w in results["ways"]]:
        r = results["ways"][way]
        row = {"way": way, "n train": r["n_train"],
               "NORMAL / PNEUMONIA": "{} / {}".format(*r["class_counts"])}
        for key, name in zip(METRICS, ("accuracy", "balanced accuracy", "AUROC"), strict=True):
            row[name], row[f"{name} sd"] = r["mean"][key], r["sd"][key]
        base = results["ways"].get(BASELINE.get(way))
        row["AUROC / real"] = r["mean"]["auroc"] / base["mean"]["auroc"] if base else None
        row["seconds per training"] = r["mean"]["seconds"]
        rows.append(row)
    return pd.DataFrame(rows)


def caption(results: dict[str, Any], data_description: str = "") -> str:
    """How the numbers were made, in one paragraph (for the table and the figure)."""
    c, test = results["classifier"], results["test"]
    cfg = c["config"]
    text = (f"Classifier: {c['architecture']} ({c['n_parameters']:,} parameters, "
            f"{c['image_size']} px), {cfg['epochs']} epochs, batch {cfg['batch_size']}, "
            f"lr {cfg['lr']:g}. Scored on the {test['n']:,} real test images "
            f"({test['class_counts'][0]:,} NORMAL / {test['class_counts'][1]:,} PNEUMONIA); "
            f"accuracy and balanced accuracy at P(PNEUMONIA) >= 0.5; mean and sample sd over "
            f"seeds {results['seeds']}. Synthetic sets have the class counts of the real set "
            f"they stand in for.")
    if "synthetic" in results["ways"]:
        text += " " + verdict(results)
    if "cas" in results:
        text += " " + cas_verdict(results)
    return f"{text} Data: {data_description}." if data_description else text


def curves_frame(results: dict[str, Any]) -> pd.DataFrame:
    """Long table of the training curves: way, seed, epoch, loss, accuracy."""
    return pd.DataFrame([{"way": way, "seed": seed, **point}
                         for way, r in results["ways"].items()
                         for seed, s in r["seeds"].items() for point in s["curve"]])
