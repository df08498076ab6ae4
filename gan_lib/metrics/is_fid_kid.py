"""IS, FID and KID from features: the metrics themselves, as torch-fidelity computes them.

Extraction and metrics are separate: images (uint8, gray repeated to 3 channels) stream batch by
batch through the feature extractor (:mod:`gan_lib.metrics.extraction`); torch-fidelity's own
functions turn features into statistics and metrics (features -> mu, sigma -> FID; features ->
KID; logits -> IS), and FID comes from the package's one Fréchet engine
(:mod:`gan_lib.metrics.frechet`). Nothing here re-implements a metric formula.

Each metric is registered once (:func:`register_metric`, as stylegan2-ada's
``metric_main.register_metric``) in :data:`METRICS`: its function from features to a
:class:`Value`, whether it compares a set with a reference (FID, KID) or scores one set (IS),
the ScoreConfig field that sizes its generated set, and what the weights must provide for it.
Scoring, :func:`evaluate` and :func:`compare` read the registry; none names a metric.
:func:`compare` is the one entry point over features; :func:`score_images` over two image sets.

Example:
    >>> metric_name("fid", 5000)
    'fid5k'
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch_fidelity import metric_fid, metric_isc, metric_kid

from ..config import ScoreConfig
from .calibrate import calibration_batch
from .extraction import extract_features
from .feature_extractor import Extractor, load_extractor
from .frechet import ReferenceStatistics
from .inception_weights import EXTRACTOR, HOW_TO_SUPPLY

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


@dataclass(frozen=True)
class Value:
    """A metric's value, its spread (None where it has none) and the settings it was made with."""

    value: float
    std: float | None = None
    settings: dict[str, Any] = field(default_factory=dict)  # written beside it in scores.json


class Reference:
    """A reference set's features by metric, keeping what a metric prepares from them (FID's
    covariance) for every set compared with it."""

    def __init__(self, features: dict[str, torch.Tensor], layers: dict[str, str]):
        self.features, self.layers = features, layers
        self._prepared: dict[str, Any] = {}

    def of(self, metric: str) -> torch.Tensor:
        """The features [N, D] that ``metric`` reads."""
        return self.features[self.layers[metric]]

    def prepared(self, metric: str, make: Callable[[torch.Tensor], Any]) -> Any:
        """``make(self.of(metric))``, made once per reference set."""
        if metric not in self._prepared:
            self._prepared[metric] = make(self.of(metric))
        return self._prepared[metric]


@dataclass(frozen=True)
class Metric:
    """One metric as scoring runs it (see :func:`register_metric`)."""

    name: str
    compute: Callable[[torch.Tensor, Reference | None, ScoreConfig], Value]
    pair: bool  # True: a set against a reference (generated vs real, floors); False: one set
    n_setting: str  # the ScoreConfig field with the size of its generated set
    layer: str  # the Extractor.layers entry whose features it reads ('fid', 'kid', 'is')
    needs: str = ""  # what the extractor's weights lack when it is unavailable, in words
    label: str = ""  # its name in sentences (IS)


METRICS: dict[str, Metric] = {}


def register_metric(name: str, *, pair: bool, n_setting: str, layer: str | None = None,
                    needs: str = "", label: str = "") -> Callable:
    """Register ``compute(features, reference, score_cfg) -> Value`` as metric ``name``.

    ``features`` are the set's features at the layer the extractor uses for ``layer`` (default
    ``name``; ``net.layers[layer]``); ``reference`` is None for a one-set metric.
    """
    def register(compute: Callable) -> Callable:
        METRICS[name] = Metric(name, compute, pair, n_setting, layer or name, needs,
                               label or name.upper())
        return compute
    return register


@register_metric("fid", pair=True, n_setting="n_fake")
def _fid(features: torch.Tensor, reference: Reference | None, score_cfg: ScoreConfig) -> Value:
    if len(features) < 2 or len(reference.of("fid")) < 2:
        raise ValueError(f"FID needs at least 2 images per set, got {len(features)} and "
                         f"{len(reference.of('fid'))}")
    return Value(reference.prepared("fid", ReferenceStatistics).distance(features))


@register_metric("kid", pair=True, n_setting="n_fake")
def _kid(features: torch.Tensor, reference: Reference | None, score_cfg: ScoreConfig) -> Value:
    mean, std, size = kid_from_features(features, reference.of("kid"), score_cfg.kid_subsets,
                                        score_cfg.kid_subset_size)
    return Value(mean, std, {"kid_subset_size": size, "kid_subsets": score_cfg.kid_subsets})


@register_metric("is", pair=False, n_setting="n_fake_is", label="IS",
                 needs="classifier layer (pool3 features only), so there are no logits for an "
                       "Inception Score")
def _is(features: torch.Tensor, reference: Reference | None, score_cfg: ScoreConfig) -> Value:
    mean, std = inception_score(features, score_cfg.is_splits)
    return Value(mean, std, {"is_splits": score_cfg.is_splits})


def unavailable(net: Extractor, metric: str) -> tuple[str, str] | None:
    """(why, what to do) when ``net`` cannot give ``metric`` (its weights lack the layer), or
    None when it can."""
    m = METRICS[metric]
    if m.layer in net.layers:
        return None
    return (f"the Inception weights in use ({net.weights['origin']}) have no {m.needs}",
            f"to get {m.label}, " + HOW_TO_SUPPLY)


def evaluate(net: Extractor, f1: dict[str, torch.Tensor], reference: Reference | None,
             score_cfg: ScoreConfig, metrics: tuple[str, ...] | None = None) -> dict[str, Value]:
    """{metric: Value} of set 1 for each registered metric that ``metrics`` (default: all) and
    score_cfg ask for: two-set metrics against ``reference`` (skipped without one), one-set
    metrics of set 1 alone (skipped where the weights cannot give them)."""
    wanted = [m for m in METRICS if m in score_cfg.metrics and (metrics is None or m in metrics)]
    out = {}
    for name in wanted:
        metric = METRICS[name]
        if reference is None if metric.pair else unavailable(net, name) is not None:
            continue  # nothing to compare with, or weights without the metric's layer
        out[name] = metric.compute(f1[net.layers[metric.layer]],
                                   reference if metric.pair else None, score_cfg)
    return out


def compare(net: Extractor, f1: dict[str, torch.Tensor], f2: dict[str, torch.Tensor] | None,
            score_cfg: ScoreConfig, reference: ReferenceStatistics | None = None,
            metrics: tuple[str, ...] = ("fid", "kid", "is")) -> dict[str, Any]:
    """Those of ``metrics`` that score_cfg asks for: FID/KID of set 1 vs set 2, IS of set 1, as
    one flat dict ({'fid', 'kid', 'kid_std', 'kid_subset_size', 'is', 'is_std', ...}).

    ``reference`` (set 2 prepared by :class:`gan_lib.metrics.frechet.ReferenceStatistics`) saves
    recomputing its covariance for every snapshot.
    """
    ref = Reference(f2, net.layers) if f2 is not None else None
    if ref is not None and reference is not None:
        ref.prepared("fid", lambda _: reference)
    out: dict[str, Any] = {}
    for name, v in evaluate(net, f1, ref, score_cfg, metrics).items():
        out[name] = v.value
        out.update({f"{name}_std": v.std} if v.std is not None else {}, **v.settings)
    return out


def score_images(fake: torch.Tensor, real: torch.Tensor, score_cfg: ScoreConfig,
                 extractor: str | Extractor = EXTRACTOR) -> dict[str, Any]:
    """FID/KID of ``fake`` against ``real`` and IS of ``fake`` (uint8 images), uncached.

    >>> score_images(fake, real, config.make_score_config("smoke"))["fid"]  # doctest: +SKIP
    """
    net = extractor if isinstance(extractor, Extractor) else load_extractor(
        score_cfg, extractor, calibration_batch(real))
    f_fake, f_real = extract_features(net, fake, "fake"), extract_features(net, real, "real")
    return compare(net, f_fake, f_real, score_cfg)


__all__ = ["metric_name", "statistics", "kid_from_features", "inception_score", "compare",
           "score_images", "RNG_SEED", "METRICS", "Metric", "Value", "Reference",
           "register_metric", "evaluate", "unavailable"]
