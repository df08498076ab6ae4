"""IS, FID and KID from features: the metrics themselves, as torch-fidelity computes them.

Extraction and metrics are separate: images (uint8, gray repeated to 3 channels) stream batch by
batch through the feature extractor (:mod:`gan_lib.metrics.extraction`); torch-fidelity's own
functions turn features into statistics and metrics (features -> mu, sigma -> FID; features ->
KID; logits -> IS), and FID comes from the package's one Fréchet engine
(:mod:`gan_lib.metrics.frechet`). Nothing here re-implements a metric formula.
:func:`compare` is the one entry point over features; :func:`score_images` over two image sets.

Example:
    >>> metric_name("fid", 5000)
    'fid5k'
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
from torch_fidelity import metric_fid, metric_isc, metric_kid

from ..config import ScoreConfig
from .extraction import extract_features
from .feature_extractor import Extractor, load_extractor
from .frechet import ReferenceStatistics
from .inception_weights import EXTRACTOR

RNG_SEED = 2020  # torch-fidelity's default seed: KID subsets and IS split shuffling match it


def metric_name(metric: str, n: int) -> str:
    """Name with its sample count: ('fid', 5000) -> 'fid5k'; ('is', 4096) -> 'is4096'.

    >>> metric_name("fid", 5000), metric_name("kid", 1024)
    ('fid5k', 'kid1024')
    """
    return f"{metric}{n // 1000}k" if n >= 1000 and n % 1000 == 0 else f"{metric}{n}"


def statistics(features: torch.Tensor) -> dict[str, np.ndarray]:
    """float [N, D] -> {'mu': [D], 'sigma': [D, D]} (torch-fidelity, as pytorch-fid stores them)."""
    if len(features) < 2:
        raise ValueError(f"FID needs at least 2 images per set, got {len(features)}")
    return metric_fid.fid_features_to_statistics(features)


def kid_from_features(f1: torch.Tensor, f2: torch.Tensor, subsets: int,
                      subset_size: int) -> tuple[float, float, int]:
    """(KID mean, KID std, subset size used). The subset size is lowered to the smaller set."""
    size = min(subset_size, len(f1), len(f2))
    if size < 2:
        raise ValueError(f"KID needs at least 2 images per set, got {len(f1)} and {len(f2)}")
    if size < subset_size:
        warnings.warn(f"KID subset size lowered from {subset_size} to {size} (the smaller set)",
                      stacklevel=2)
    out = metric_kid.kid_features_to_metric(f1, f2, kid_subsets=subsets, kid_subset_size=size,
                                            rng_seed=RNG_SEED, verbose=False)
    return (float(out[metric_kid.KEY_METRIC_KID_MEAN]), float(out[metric_kid.KEY_METRIC_KID_STD]),
            size)


def inception_score(logits: torch.Tensor, splits: int) -> tuple[float, float]:
    """(IS mean, IS std over ``splits``) of classifier logits [N, C] (torch-fidelity)."""
    if len(logits) < splits:
        raise ValueError(f"Inception Score with {splits} splits needs at least {splits} images, "
                         f"got {len(logits)}; raise n_fake_is or lower is_splits")
    if not torch.isfinite(logits).all():
        raise ValueError("Inception logits are not finite: these weights have no classifier")
    out = metric_isc.isc_features_to_metric(logits, splits, True, RNG_SEED)
    return float(out[metric_isc.KEY_METRIC_ISC_MEAN]), float(out[metric_isc.KEY_METRIC_ISC_STD])


def compare(net: Extractor, f1: dict[str, torch.Tensor], f2: dict[str, torch.Tensor] | None,
            score_cfg: ScoreConfig, reference: ReferenceStatistics | None = None,
            metrics: tuple[str, ...] = ("fid", "kid", "is")) -> dict[str, Any]:
    """Those of ``metrics`` that score_cfg asks for: FID/KID of set 1 vs set 2, IS of set 1.

    ``reference`` (set 2 prepared by :class:`gan_lib.metrics.frechet.ReferenceStatistics`) saves
    recomputing its covariance for every snapshot.
    """
    wanted = set(metrics) & set(score_cfg.metrics)
    out: dict[str, Any] = {}
    if "fid" in wanted and f2 is not None:
        fid_layer = net.layers["fid"]
        if len(f1[fid_layer]) < 2 or len(f2[fid_layer]) < 2:
            raise ValueError(f"FID needs at least 2 images per set, got {len(f1[fid_layer])} "
                             f"and {len(f2[fid_layer])}")
        reference = reference if reference is not None else ReferenceStatistics(f2[fid_layer])
        out["fid"] = reference.distance(f1[fid_layer])
    if "kid" in wanted and f2 is not None:
        mean, std, size = kid_from_features(f1[net.layers["kid"]], f2[net.layers["kid"]],
                                            score_cfg.kid_subsets, score_cfg.kid_subset_size)
        out.update(kid=mean, kid_std=std, kid_subset_size=size)
    if "is" in wanted and "is" in net.layers:
        out["is"], out["is_std"] = inception_score(f1[net.layers["is"]], score_cfg.is_splits)
    return out


def score_images(fake: torch.Tensor, real: torch.Tensor, score_cfg: ScoreConfig,
                 extractor: str | Extractor = EXTRACTOR) -> dict[str, Any]:
    """FID/KID of ``fake`` against ``real`` and IS of ``fake`` (uint8 images), uncached.

    >>> score_images(fake, real, config.make_score_config("smoke"))["fid"]  # doctest: +SKIP
    """
    net = extractor if isinstance(extractor, Extractor) else load_extractor(score_cfg, extractor)
    f_fake, f_real = extract_features(net, fake, "fake"), extract_features(net, real, "real")
    return compare(net, f_fake, f_real, score_cfg)


__all__ = ["metric_name", "statistics", "kid_from_features", "inception_score", "compare",
           "score_images", "RNG_SEED"]
