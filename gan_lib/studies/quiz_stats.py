"""Reader-study statistics: can people tell generated chest X-rays from real ones?

Pure functions of an answers table (one row per reader and image: ``reader``, ``image``,
``truth`` and ``answer`` each "real" or "fake", ``confidence`` 1..5). Per reader and pooled:

- accuracy with an exact (Clopper-Pearson) 95% interval and the two-sided binomial test
  against chance (p = 0.5), ``scipy.stats.binomtest``;
- sensitivity (fakes called fake / fakes) and specificity (reals called real / reals):
  spotting a fake is the "positive" finding;
- the ROC AUC of the confidence rating signed by the answer (fake with confidence c -> +c,
  real -> -c), ``sklearn.metrics.roc_auc_score``: 0.5 is chance, 1 a reader whose confidence
  ranks every fake above every real image;
- agreement between readers, Fleiss' kappa (``statsmodels``) over the images every reader
  answered: 0 is the agreement chance gives, 1 complete agreement, below 0 less than chance.

Pooled rows put every answer together; they treat the answers as independent, which answers of
one reader are not, so read the pooled interval as narrower than the truth and the per-reader
rows as the clean ones.

Example:
    >>> a = pd.DataFrame({"reader": "r1", "image": [1, 2, 3, 4], "truth": ["fake", "real"] * 2,
    ...                   "answer": ["fake", "real", "real", "real"], "confidence": 3})
    >>> s = reader_stats(a)
    >>> s["correct"], s["n"], s["sensitivity"], s["specificity"], s["auc"]
    (3, 4, 0.5, 1.0, 0.75)
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import binomtest
from sklearn.metrics import roc_auc_score, roc_curve

CHANCE = 0.5  # half the images are real, half generated
ALPHA = 0.05  # 95% intervals; "differs from chance" at p < ALPHA
POOLED = "pooled"


def signed_confidence(answers: pd.DataFrame) -> np.ndarray:
    """The reader's belief that an image is fake: +confidence if answered fake, else -confidence.

    >>> signed_confidence(pd.DataFrame({"answer": ["fake", "real"], "confidence": [5, 2]}))
    array([ 5, -2])
    """
    conf = answers["confidence"].to_numpy(dtype=int)
    return np.where(answers["answer"].to_numpy() == "fake", conf, -conf)


def reader_stats(answers: pd.DataFrame) -> dict[str, Any]:
    """Accuracy (exact 95% interval, p vs chance), sensitivity, specificity and AUC of answers.

    ``answers`` may hold one reader or many (pooled). An AUC needs both kinds of image: with
    only one it is NaN.

    >>> a = pd.DataFrame({"truth": ["fake"] * 10, "answer": ["fake"] * 10, "confidence": 5})
    >>> s = reader_stats(a)
    >>> round(s["ci_low"], 4), s["ci_high"], round(s["p_value"], 5), s["differs_from_chance"]
    (0.6915, 1.0, 0.00195, True)
    """
    truth_fake = answers["truth"].to_numpy() == "fake"
    said_fake = answers["answer"].to_numpy() == "fake"
    n, correct = len(answers), int((truth_fake == said_fake).sum())
    test = binomtest(correct, n, CHANCE)  # two-sided
    ci = test.proportion_ci(confidence_level=1 - ALPHA, method="exact")  # Clopper-Pearson
    n_fakes, n_reals = int(truth_fake.sum()), int((~truth_fake).sum())
    both_kinds = n_fakes > 0 and n_reals > 0
    return {
        "n": n, "correct": correct, "accuracy": correct / n,
        "ci_low": float(ci.low), "ci_high": float(ci.high), "p_value": float(test.pvalue),
        "differs_from_chance": bool(test.pvalue < ALPHA),
        "n_fakes": n_fakes,
        "sensitivity": float((said_fake & truth_fake).sum() / n_fakes) if n_fakes else np.nan,
        "n_reals": n_reals,
        "specificity": float((~said_fake & ~truth_fake).sum() / n_reals) if n_reals else np.nan,
        "auc": float(roc_auc_score(truth_fake, signed_confidence(answers))) if both_kinds
        else np.nan,
    }


def rating_counts(answers: pd.DataFrame) -> tuple[np.ndarray, int]:
    """Fleiss' table [images, (real, fake)] over the images every reader answered; and readers.

    >>> a = pd.DataFrame({"reader": ["a", "a", "b", "b"], "image": [1, 2, 1, 2],
    ...                   "answer": ["fake", "real", "fake", "fake"]})
    >>> rating_counts(a)
    (array([[0, 2],
           [1, 1]]), 2)
    """
    wide = answers.pivot(index="image", columns="reader", values="answer").dropna()
    fake = (wide == "fake").sum(axis=1).to_numpy()
    return np.stack([wide.shape[1] - fake, fake], axis=1), int(wide.shape[1])


def fleiss_kappa(answers: pd.DataFrame) -> tuple[float, int, int]:
    """(Fleiss' kappa, images, readers) of the real/fake answers; NaN below 2 readers.

    Kappa is undefined (NaN) when every answer is the same: then chance agreement is already 1.

    >>> a = pd.DataFrame({"reader": ["a", "a", "b", "b"], "image": [1, 2, 1, 2],
    ...                   "answer": ["fake", "real", "fake", "real"]})
    >>> fleiss_kappa(a)
    (1.0, 2, 2)
    """
    from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss_kappa

    table, readers = rating_counts(answers)
    if readers < 2 or len(table) == 0:
        return np.nan, len(table), readers
    p = table.sum(axis=0) / table.sum()
    if np.isclose((p**2).sum(), 1.0):  # one category only: kappa = 0/0
        return np.nan, len(table), readers
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(sm_fleiss_kappa(table, method="fleiss")), len(table), readers


def study_table(answers: pd.DataFrame) -> pd.DataFrame:
    """One row per reader (in order of appearance) and a pooled row; kappa on the pooled row.

    >>> a = pd.DataFrame({"reader": ["a", "a", "b", "b"], "image": [1, 2, 1, 2],
    ...                   "truth": ["fake", "real"] * 2, "answer": ["fake", "real"] * 2,
    ...                   "confidence": 4})
    >>> t = study_table(a)
    >>> t["reader"].tolist(), t["accuracy"].tolist(), t["Fleiss kappa"].tolist()
    (['a', 'b', 'pooled'], [1.0, 1.0, 1.0], [nan, nan, 1.0])
    """
    rows = [{"reader": str(r), **reader_stats(g)} for r, g in answers.groupby("reader", sort=False)]
    kappa, _, _ = fleiss_kappa(answers)
    rows.append({"reader": POOLED, **reader_stats(answers), "Fleiss kappa": kappa})
    table = pd.DataFrame(rows)
    table["Fleiss kappa"] = table.get("Fleiss kappa", np.nan)
    table["differs_from_chance"] = table["differs_from_chance"].map({True: "yes", False: "no"})
    return table.rename(columns={"ci_low": "95% CI low", "ci_high": "95% CI high",
                                 "p_value": "p (vs 0.5)", "n_fakes": "n fakes",
                                 "n_reals": "n reals", "auc": "AUC",
                                 "differs_from_chance": "differs from chance"})


def pooled_roc(answers: pd.DataFrame) -> dict[str, np.ndarray]:
    """The pooled ROC curve of the signed confidence: {'fpr', 'tpr'} (fake = positive)."""
    fpr, tpr, _ = roc_curve(answers["truth"].to_numpy() == "fake", signed_confidence(answers))
    return {"fpr": fpr, "tpr": tpr}


def caption(table: pd.DataFrame, key: dict[str, Any]) -> str:
    """How the reader-study numbers were made: quiz, images, readers, tests, n."""
    pooled = table[table["reader"] == POOLED].iloc[0]
    readers = len(table) - 1
    data = key["data"]
    kappa = ("Fleiss' kappa between readers over the images every reader answered "
             "(statsmodels; pooled row only, nan where all answers are the same)"
             if readers >= 2 else "Fleiss' kappa needs 2 or more readers (none here)")
    return (f"Reader study, quiz {key['quiz_id']}: {readers} reader(s), {int(pooled['n'])} answers "
            f"in all, {key['n']} images per reader ({key['n'] // 2} real from the "
            f"{data['real_split']} split of {data['description']}, never trained on; "
            f"{key['n'] // 2} generated by run '{key['run']}' at iteration "
            f"{key['snapshot']['iteration']:,}, {key['snapshot']['sampling']}), "
            f"{key['image_size']} px shown at {key['display']['size']} px "
            f"({key['display']['filter']} filter for both kinds), seed {key['seed']}. Accuracy "
            "with exact Clopper-Pearson 95% intervals and two-sided binomial tests against 0.5 "
            "(scipy); sensitivity = fakes called fake / fakes, specificity = reals called real "
            "/ reals; AUC of the confidence signed by the answer (scikit-learn); "
            f"{kappa}. The pooled row treats all answers as independent.")
