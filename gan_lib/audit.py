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
  2020), with a bootstrap interval at the largest n.

Example:
    >>> g = torch.Generator().manual_seed(0)
    >>> real = torch.randn(200, 8, generator=g)
    >>> {k: round(v, 2) for k, v in prdc(real, real).items()}
    {'precision': 1.0, 'recall': 1.0, 'density': 1.0, 'coverage': 1.0}
"""

from __future__ import annotations

import contextlib
import io as stdio
import math
from typing import Any

import numpy as np
import torch

from . import metrics

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
    with contextlib.redirect_stdout(stdio.StringIO()):  # it prints the set sizes
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
        1 / 8, 1 / 4, 1 / 2, 1), resamples: int = 10, seed: int = 0) -> dict[str, Any]:
    """FID of ``fake`` vs ``real`` features at several n, and FID_inf from FID_n = FID_inf + k/n.

    At each fraction, ``n`` fakes are drawn without replacement (the real set stays whole) and
    the FID is averaged over ``resamples`` draws (one at the full size, which is exact). The
    fit is ordinary least squares in 1/n; ``residual`` is its root-mean-square error. The
    bootstrap interval at the full n resamples the fakes with replacement ``resamples`` times.
    """
    g = torch.Generator().manual_seed(seed)
    real_stats = metrics.statistics(real)
    points = []
    for fraction in fractions:
        n = max(2, round(fraction * len(fake)))
        draws = 1 if n == len(fake) else resamples
        values = [metrics.fid_from_statistics(metrics.statistics(
            fake[torch.randperm(len(fake), generator=g)[:n]]), real_stats) for _ in range(draws)]
        points.append({"n": n, "fid": float(np.mean(values)), "draws": draws})
    x = np.array([1 / p["n"] for p in points])
    y = np.array([p["fid"] for p in points])
    slope, intercept = np.polyfit(x, y, 1)
    residual = float(np.sqrt(np.mean((intercept + slope * x - y) ** 2)))
    boot = [metrics.fid_from_statistics(metrics.statistics(
        fake[torch.randint(len(fake), (len(fake),), generator=g)]), real_stats)
        for _ in range(resamples)]
    return {"points": points, "fid_inf": float(intercept), "slope_k": float(slope),
            "residual": residual, "n_real": len(real),
            "bootstrap_95": [float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))],
            "resamples": resamples}
