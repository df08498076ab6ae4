"""Audit of generated images beyond FID: fidelity and diversity, copying, sample-size bias.

Pure functions of feature vectors (or uint8 images), so each can be checked on sets whose
answer is known:

- :func:`prdc` — precision and recall (Kynkäänniemi et al. 2019, k=3), density and coverage
  (Naeem et al. 2020, k=5) of generated vs real features, by the ``prdc`` package;
- :func:`nearest` — exact nearest neighbours (torch matmul in chunks, no approximation), in
  cosine distance on features or normalised L2 on pixels;
- :func:`copy_rate` — the fraction of fakes closer to their nearest training image than the
  1st percentile of the same distance for held-out real images;
- :func:`data_copying_ct` — the three-sample data-copying statistic C_T (Meehan, Chaudhuri and
  Dasgupta, AISTATS 2020): well below 0 signals copying, near 0 none;
- :func:`fid_vs_n` — FID at several n and the fit FID_n = FID_inf + k / n (Chong and Forsyth
  2020), with a delete-half jackknife interval at the largest n.

Example:
    >>> g = torch.Generator().manual_seed(0)
    >>> real = torch.randn(200, 8, generator=g)
    >>> {k: round(v, 2) for k, v in prdc(real, real).items()}
    {'precision': 1.0, 'recall': 1.0, 'density': 1.0, 'coverage': 1.0}
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import time
from typing import Any

import numpy as np
import torch

from .. import storage
from ..config import TrainConfig
from ..gan import batches, run_folder, run_lock
from ..metrics import (
    calibrate,
    feature_extractor,
    features,
    frechet,
    inception_weights,
    provenance,
    scoring,
)
from ..scale import distributed

PR_K, DC_K = 3, 5  # neighbourhood sizes of the two papers


def prdc(real: torch.Tensor, fake: torch.Tensor, pr_k: int = PR_K,
         dc_k: int = DC_K) -> dict[str, float]:
    """Precision, recall (k = ``pr_k``), density, coverage (k = ``dc_k``) of ``fake`` vs ``real``.

    real: [N, D], fake: [M, D] features. Precision: share of fakes inside some real sample's
    k-NN ball; recall: share of reals inside some fake's ball; density and coverage replace
    them with counts that outliers move less.
    """
    from prdc import compute_prdc  # imported here: scikit-learn loads only for an audit

    if min(len(real), len(fake)) <= max(pr_k, dc_k):
        raise ValueError(f"PRDC needs more than {max(pr_k, dc_k)} images per set, got "
                         f"{len(real)} real and {len(fake)} generated")
    r, f = real.double().numpy(), fake.double().numpy()
    with contextlib.redirect_stdout(io.StringIO()):  # it prints the set sizes
        pr, dc = compute_prdc(r, f, pr_k), compute_prdc(r, f, dc_k)
    return {"precision": float(pr["precision"]), "recall": float(pr["recall"]),
            "density": float(dc["density"]), "coverage": float(dc["coverage"])}


def nearest(queries: torch.Tensor, reference: torch.Tensor, metric: str = "cosine",
            chunk: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact nearest neighbour in ``reference`` of each query: (distance [Q], index [Q]).

    ``cosine``: 1 - cosine similarity of feature vectors. ``l2``: Euclidean distance of
    images (any shape [N, ...], uint8 or float) scaled to [0, 1], divided by sqrt(pixels), so
    it is the root-mean-square pixel difference.
    """
    q, ref = queries.flatten(1).double(), reference.flatten(1).double()
    if metric == "cosine":
        q = torch.nn.functional.normalize(q, dim=1)
        ref = torch.nn.functional.normalize(ref, dim=1)
    elif metric == "l2":
        scale = 255.0 if queries.dtype == torch.uint8 else 1.0
        q, ref = q / scale, ref / scale
    else:
        raise ValueError(f"metric={metric!r}: expected 'cosine' or 'l2'")
    ref_sq = (ref * ref).sum(1)
    dists, index = [], []
    for start in range(0, len(q), chunk):
        block = q[start:start + chunk]
        if metric == "cosine":
            d = 1.0 - block @ ref.T
        else:  # |a - b|^2 = |a|^2 + |b|^2 - 2 a.b, clamped against rounding below 0
            d = ((block * block).sum(1, keepdim=True) + ref_sq - 2 * block @ ref.T).clamp_min(0)
        best, where = d.min(dim=1)
        dists.append(best if metric == "cosine" else best.sqrt() / math.sqrt(q.shape[1]))
        index.append(where)
    return torch.cat(dists).float(), torch.cat(index)


def copy_rate(fake_to_train: torch.Tensor, heldout_to_train: torch.Tensor,
              percentile: float = 1.0) -> dict[str, float]:
    """Share of fakes closer to their nearest training image than ``percentile`` % of
    held-out real images are to theirs (an honest new image's closeness), with the numbers."""
    threshold = float(np.percentile(heldout_to_train.numpy(), percentile))
    return {"copy_rate": float((fake_to_train < threshold).double().mean()),
            "threshold": threshold, "percentile": percentile,
            "n_fake": len(fake_to_train), "n_reference": len(heldout_to_train)}


def data_copying_ct(train: torch.Tensor, heldout: torch.Tensor, fake: torch.Tensor,
                    cells: int = 10, min_per_cell: int = 5, seed: int = 0) -> dict[str, Any]:
    """Meehan et al.'s C_T of generated features ``fake`` against ``train`` and ``heldout``.

    The feature space is cut into ``cells`` by k-means on the training features. In each cell,
    the distances of held-out reals (P_n) and fakes (Q_m) to their nearest training point are
    compared with a Mann-Whitney U test, as a z-score (negative: fakes closer than real new
    images are, i.e. copying). C_T averages the z-scores weighted by each cell's share of P_n,
    over the cells with at least ``min_per_cell`` of each set.
    """
    from scipy.stats import mannwhitneyu
    from sklearn.cluster import KMeans

    d_held = nearest(heldout, train, "l2")[0].double().numpy()
    d_fake = nearest(fake, train, "l2")[0].double().numpy()
    km = KMeans(n_clusters=cells, n_init=4, random_state=seed).fit(train.double().numpy())
    cell_held, cell_fake = km.predict(heldout.double().numpy()), km.predict(fake.double().numpy())
    z_scores, weights = [], []
    for c in range(cells):
        a, b = d_fake[cell_fake == c], d_held[cell_held == c]
        if len(a) < min_per_cell or len(b) < min_per_cell:
            continue
        u = mannwhitneyu(a, b, alternative="two-sided").statistic  # pairs with fake farther
        m, n = len(a), len(b)
        z_scores.append((u - m * n / 2) / math.sqrt(m * n * (m + n + 1) / 12))
        weights.append(len(b) / len(d_held))
    if not z_scores:
        raise ValueError(f"no cell holds {min_per_cell}+ held-out and generated samples: use "
                         "fewer cells or more samples")
    c_t = float(np.dot(z_scores, weights) / np.sum(weights))
    return {"C_T": c_t, "cells": cells, "cells_used": len(z_scores),
            "n_train": len(train), "n_heldout": len(heldout), "n_fake": len(fake)}


def fid_vs_n(fake: torch.Tensor, real: torch.Tensor, fractions: tuple[float, ...] = (
        1 / 8, 1 / 4, 1 / 2, 1), resamples: int = 20, seed: int = 0) -> dict[str, Any]:
    """FID of ``fake`` vs ``real`` features at several n, and FID_inf from FID_n = FID_inf + k/n.

    At each fraction, ``n`` fakes are drawn without replacement (the real set stays whole) and
    the FID is averaged over ``resamples`` draws (one at the full size, which is exact). The
    fit is ordinary least squares in 1/n; ``residual`` is its root-mean-square error.

    ``interval_95`` is FID ± 1.96 sd, the spread of the FID at the full n due to the generated
    sample (the reference held fixed). The sd is the delete-half jackknife's (Shao and Wu
    1989): the standard deviation of the FIDs of ``resamples`` halves drawn without
    replacement, which estimates the variance at n directly when half is deleted. A bootstrap
    (draws with replacement) does not work here: a resample repeats about a third of its
    images, which raises its FID and widens its spread. tests/test_audit.py checks both on
    Gaussians of known spread: the halves' sd against the true one, and that bootstrap FIDs lie
    above the FID.
    """
    g = torch.Generator().manual_seed(seed)
    reference = frechet.ReferenceStatistics(real)
    sizes, half = sorted({max(2, round(f * len(fake))) for f in fractions}), max(2, len(fake) // 2)
    drawn: dict[int, list[float]] = {}
    for n in sorted({*sizes, half}):
        draws = 1 if n == len(fake) else resamples
        drawn[n] = [reference.distance(fake[torch.randperm(len(fake), generator=g)[:n]])
                    for _ in range(draws)]
    points = [{"n": n, "fid": float(np.mean(drawn[n])), "draws": len(drawn[n])} for n in sizes]
    x = np.array([1 / p["n"] for p in points])
    y = np.array([p["fid"] for p in points])
    slope, intercept = np.polyfit(x, y, 1)
    residual = float(np.sqrt(np.mean((intercept + slope * x - y) ** 2)))
    fid = reference.distance(fake)
    sd = float(np.std(drawn[half], ddof=1))
    return {"points": points, "fid_inf": float(intercept), "slope_k": float(slope),
            "residual": residual, "n_real": len(real), "fid": fid, "sd": sd,
            "interval_95": [fid - 1.96 * sd, fid + 1.96 * sd], "resamples": resamples}


# --- auditing a run: the features scoring cached, the run's own images ------------------------


@run_lock.locked("audit")
def audit_run(run_dir: str | os.PathLike, score_cfg: Any = None,
              extractor: str = inception_weights.EXTRACTOR) -> dict[str, Any]:
    """Audit every snapshot of a run; write ``run_dir/audit.json`` (atomic) and return it.

    Reads the feature sets scoring cached (metrics/features.py): the reference set of real training
    images, the held-out training images and the test images of Table 1's floors, and each
    snapshot's generated set, so after ``score_run`` only the rest of the training split is
    extracted (once, then cached). Memorization is measured for the final snapshot against
    every image the run trained on, in feature space (cosine) and in pixel space, each beside
    the same distances for the test images.
    """
    t0 = time.perf_counter()
    run_dir = run_folder.run_path(run_dir)
    run_cfg = run_folder.load_run_config(run_dir)
    score_cfg = score_cfg or scoring.score_config(run=run_dir)
    ds, test = scoring.load_real(run_cfg, "train"), scoring.load_real(run_cfg, "test")
    net = feature_extractor.load_extractor(score_cfg, extractor,
                                           calibrate.calibration_batch(ds.images))
    layer, size = net.layers["fid"], run_cfg["config"]["image_size"]
    ref = features.real_features(net, ds, score_cfg.n_real, size)
    held, held_ref, cached = held_out(net, ds, ref, score_cfg.n_fake, size)
    test_set = features.real_features(net, test, score_cfg.n_fake, size)
    real = {"held-out train": (held["features"][layer], held_ref),
            "test": (test_set["features"][layer], ref)}
    snapshots = run_folder.list_snapshots(run_dir)
    rows = []
    for name, (feats, against) in [*real.items(), *((it, (features.fake_features(
            net, path, score_cfg.n_fake, score_cfg.seed)["features"][layer], ref))
            for it, path in snapshots)]:
        reference = against["features"][layer]
        rows.append({"set": name if isinstance(name, str) else f"iteration {name}",
                     "iteration": None if isinstance(name, str) else name, "n": len(feats),
                     "n_real": against["n"], **({"note": against["note"]} if "note" in against
                                                 else {}),
                     **prdc(reference, feats),
                     "fid_vs_n": fid_vs_n(feats, reference, seed=score_cfg.seed)})
    final_path = snapshots[-1][1]
    fakes = features.fake_features(net, final_path, score_cfg.n_fake, score_cfg.seed)
    trained = batches.trained_indices(len(ds.images), TrainConfig.from_dict(run_cfg["config"]))
    memo = memorization(train_features=features.at_indices(
                            net, ds, trained, size, cached=cached)[layer],
                        test_features=test_set["features"][layer], fake_features=fakes["features"][layer],
                        train_images=ds.images[trained], test_images=test.images,
                        fake_images=features.generated_images(final_path, score_cfg.n_fake,
                                                              score_cfg.seed))
    result = {
        **provenance.header(run_dir, provenance.data_record(ds, "train"), final_path, net),
        "layer": layer,
        "settings": {"n_fake": score_cfg.n_fake, "n_real": ref["n"], "seed": score_cfg.seed,
                     "pr_k": PR_K, "dc_k": DC_K},
        "sets": rows, "memorization": {"iteration": snapshots[-1][0], **memo},
        "seconds": round(time.perf_counter() - t0, 2),
    }
    result = storage.portable(result)  # no folder of this machine in a result file
    if distributed.is_main():
        storage.write_json(run_dir / "audit.json", result)
    return result


def held_out(net: feature_extractor.Extractor, ds: Any, ref: dict[str, Any], n: int,
             size: int) -> tuple[dict[str, Any], dict[str, Any], tuple[int, ...]]:
    """(held-out training images, the reference they are compared with, the cached set sizes).

    Normally ``n`` training images outside the reference set, against the whole reference, as
    Table 1's floor. Where the split has no ``n`` images left (the paper profile's reference
    is every training image), the floors' documented fallback: the reference set's second
    half against its first half, both of half its size; the reference record says so.
    """
    plan = scoring.floor_plan(len(ds.images), 0, n, ref["n"])["train"]
    if plan["same_n"]:
        held = features.real_features(net, ds, n, size, offset=ref["n"])
        return held, ref, (ref["n"], held["n"])
    half = plan["n_fake"]
    first = {"features": {k: v[:half] for k, v in ref["features"].items()}, "n": half,
             "note": f"the training split has no {n} images outside the {ref['n']}-image "
                     f"reference set, so its two disjoint halves are compared ({half} vs {half})"}
    second = {"features": {k: v[half:2 * half] for k, v in ref["features"].items()}, "n": half}
    return second, first, (ref["n"],)


def memorization(train_features: torch.Tensor, test_features: torch.Tensor,
                 fake_features: torch.Tensor, train_images: torch.Tensor,
                 test_images: torch.Tensor, fake_images: torch.Tensor) -> dict[str, Any]:
    """Nearest training image of every fake, in feature and pixel space, against test images'.

    Returns per space the copy rate (with its threshold and n), and C_T on the features; and
    the 16 fakes closest to a training image in pixels: fake index, training index, both
    distances and the share of test images that are closer to the training set than it.
    """
    out: dict[str, Any] = {}
    spaces = {"feature (cosine)": (fake_features, test_features, train_features, "cosine"),
              "pixel (RMS)": (fake_images, test_images, train_images, "l2")}
    nearest_fake = {}
    for space, (fake, test_set, train_set, metric) in spaces.items():
        d_fake, idx = nearest(fake, train_set, metric)
        d_test = nearest(test_set, train_set, metric)[0]
        nearest_fake[space] = (d_fake, idx, d_test)
        out[space] = {**copy_rate(d_fake, d_test), "n_train": len(train_set),
                      "median_fake": float(d_fake.median()), "median_test": float(d_test.median())}
    cells = max(2, min(10, len(test_features) // 25))
    out["C_T"] = data_copying_ct(train_features, test_features, fake_features, cells=cells)
    d_px, idx_px, d_test_px = nearest_fake["pixel (RMS)"]
    d_ft = nearest_fake["feature (cosine)"][0]
    closest = torch.argsort(d_px)[:16]
    out["closest"] = [{"fake": int(i), "train": int(idx_px[i]), "pixel": float(d_px[i]),
                       "feature": float(d_ft[i]),
                       "test_percentile": float((d_test_px < d_px[i]).double().mean() * 100)}
                      for i in closest]
    return out


def closest_pairs(run_dir: str | os.PathLike,
                  audit: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """(fakes, their nearest training images, titles) of the audit's 16 closest pairs."""
    run_dir = run_folder.run_path(run_dir)
    run_cfg = run_folder.load_run_config(run_dir)
    pairs, s = audit["memorization"]["closest"], audit["settings"]
    fakes = features.generated_images(run_folder.list_snapshots(run_dir)[-1][1], s["n_fake"],
                                      s["seed"])
    trained = batches.select_subset(scoring.load_real(run_cfg, "train").images,
                                    TrainConfig.from_dict(run_cfg["config"]))
    labels = [f"px {p['pixel']:.3f} · ft {p['feature']:.3f}\n{p['test_percentile']:.0f}th pct"
              for p in pairs]
    return (fakes[[p["fake"] for p in pairs]], trained[[p["train"] for p in pairs]], labels)
