"""The feature extractor: torch-fidelity's network built from the resolved weights, in the
variant the rule chose (precision, BatchNorm folded or not, channels_last, torch.compile).

:func:`load_extractor` returns an :class:`Extractor`, which carries the settings that shape its
features (:meth:`Extractor.key` is the feature caches' key) and runs the forward pass, compiled
on first use when :attr:`Extractor.compiled`. :mod:`gan_lib.metrics.extraction` feeds it images.

Example:
    >>> from gan_lib import config
    >>> net = load_extractor(config.ScoreConfig(precision="fp32", device="cpu"))  # doctest: +SKIP
    >>> net.variant  # doctest: +SKIP
    'fp32, BatchNorm folded'
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
import torch_fidelity
from torch.nn.utils.fusion import fuse_conv_bn_eval
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY
from torch_fidelity.utils import create_feature_extractor

from .. import config, device
from . import calibrate, resize, variant_rule
from .inception_weights import EXTRACTOR, resolve_weights
from .variant_rule import Variant, variant_label

if TYPE_CHECKING:
    from ..config import ScoreConfig

# Narrower feature layers of the same network, requested in every extraction: they come out of
# the same forward pass as pool3 (torch-fidelity stops at the last requested layer, pool3 comes
# after them), so they cost nothing extra and let gan_lib.protocols compare FID widths.
WIDTHS = ("64", "192", "768")


@dataclass
class Extractor:
    """A torch-fidelity feature extractor with the settings that shape its features."""

    name: str
    module: torch.nn.Module
    layers: dict[str, str]  # metric ('fid', 'kid', 'is') -> feature ('2048', 'logits_unbiased')
    weights: dict[str, Any]  # what resolve_weights() found (path, sha256, origin, has_logits)
    device: torch.device
    precision: str  # fp32 | bf16 (autocast) | fastmath (oneDNN bf16 arithmetic, fp32 tensors)
    batch_size: int
    library: str = field(default="")
    fold_bn: bool = False  # BatchNorm folded into the convolutions (fold_batchnorm)
    compiled: bool = False  # run through torch.compile; compiled on first use
    # how the variant was chosen (variant_rule / calibrate: forced, rule, skipped, measured,
    # cached), recorded in every score's provenance
    calibration: dict[str, Any] | None = None
    _forward: Callable[[torch.Tensor], Any] | None = field(default=None, repr=False)

    @property
    def variant(self) -> str:
        """How the features were computed, e.g. 'bf16, BatchNorm folded' (every score says it)."""
        return variant_label(self.precision, self.fold_bn, self.compiled)

    def forward(self, x: torch.Tensor) -> Any:
        """The module's forward pass, through torch.compile when :attr:`compiled`. The first
        batch compiles it (its cost: extraction_precision.json: rows.bf16-compiled.compile_seconds;
        inductor's on-disk cache shortens later ones). The
        resize to 299 px is compiled apart (:mod:`.resize`, bit-identical to torch-fidelity's),
        so the network's graph sees 299 px whatever the input size and is compiled once."""
        if not self.compiled:
            return self.module(x)
        with resize.compiled_resize():
            if self._forward is not None:
                return self._forward(x)
            os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(config.CACHE_DIR / "inductor"))
            # inductor's C++ builder warns "No CUDA runtime is found" on every CPU-only machine
            logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
            compiled = torch.compile(self.module, dynamic=False)
            try:
                out = compiled(x)
            except Exception as err:  # inductor: no working C++ compiler, or an unsupported op
                raise RuntimeError(
                    f"torch.compile of the Inception extractor failed ({type(err).__name__}: "
                    f"{str(err).splitlines()[0] if str(err) else ''}); score without it: "
                    "ScoreConfig(compiled=False) / --set compiled=false") from err
        self._forward = compiled
        return out

    def describe(self) -> str:
        return (f"{self.name} ({self.library}), FID/KID layer {self.layers['fid']}, "
                f"{self.variant}")

    def key(self) -> dict[str, Any]:
        """What the features depend on (the real-statistics cache key)."""
        return {"extractor": self.name, "library": self.library,
                "layers": sorted(self.layers.items()), "weights_sha256": self.weights.get("sha256"),
                "features": sorted(self.module.get_requested_features_list()),
                "precision": self.precision, "fold_bn": self.fold_bn,
                "memory_format": "channels_last",
                # only when compiled, so that eager features keep the keys (and the caches)
                # they had without it
                **({"compiled": True} if self.compiled else {})}


def fold_batchnorm(module: torch.nn.Module) -> torch.nn.Module:
    """Fold each eval-mode BatchNorm of torch-fidelity's ``BasicConv2d`` blocks into its conv
    (torch.nn.utils.fusion.fuse_conv_bn_eval), in place: one op fewer per block, the same
    function up to float rounding (features change by ~1e-6 relative)."""
    for block in module.modules():
        if isinstance(getattr(block, "bn", None), torch.nn.BatchNorm2d) and isinstance(
                getattr(block, "conv", None), torch.nn.Conv2d):
            block.conv = fuse_conv_bn_eval(block.conv.eval(), block.bn.eval())
            block.bn = torch.nn.Identity()
    return module


def load_extractor(score_cfg: ScoreConfig, extractor: str = EXTRACTOR,
                   calibration_images: torch.Tensor | None = None) -> Extractor:
    """Build torch-fidelity's extractor ``extractor`` with resolved weights on the chosen device,
    in the variant :func:`resolve_variant` chooses (its record: :attr:`Extractor.calibration`).

    ``calibration_images``: uint8 real images to calibrate on when a calibration is due
    (``calibrate.calibration_batch`` of the run's training split; default: the "auto" source's).
    The IS layer is added only when the weights have classifier logits; the narrower layers
    :data:`WIDTHS` are requested beside them when the extractor provides them.
    """
    variant, record = resolve_variant(score_cfg, extractor, calibration_images)
    net = build_extractor(score_cfg, variant, extractor)
    net.calibration = record
    return net


def resolve_variant(score_cfg: ScoreConfig, extractor: str = EXTRACTOR,
                    calibration_images: torch.Tensor | None = None,
                    ) -> tuple[Variant, dict[str, Any]]:
    """The variant ``score_cfg`` means here and how it was chosen (variant_rule.py): forced,
    by rule, or by this machine's calibration (made now if due, else read from its cache)."""
    where = device.resolve_device(score_cfg.device)
    if len(variant_rule.forced(score_cfg)) == len(variant_rule.SETTINGS):
        return variant_rule.by_rule(score_cfg, where, how="forced")
    if not variant_rule.calibrates(score_cfg, where, extractor):
        skipped = where.type == "cpu" and extractor == EXTRACTOR
        return variant_rule.by_rule(score_cfg, where, how="skipped" if skipped else "rule")
    images = calibrate.default_images() if calibration_images is None else calibration_images
    weights = resolve_weights(score_cfg.weights)

    def build(v: Variant, batch_size: int) -> Extractor:
        cfg = dataclasses.replace(score_cfg, batch_size=batch_size, **v.as_dict())
        return build_extractor(cfg, v, extractor, weights)

    record = calibrate.decide(where, score_cfg.batch_size, weights["sha256"], images, build)
    return variant_rule.from_calibration(score_cfg, where, record)


def variant_name(score_cfg: ScoreConfig, extractor: str = EXTRACTOR,
                 calibration_images: torch.Tensor | None = None) -> str:
    """The extraction variant ``score_cfg`` resolves to here, as scores record it.

    >>> from gan_lib import config
    >>> variant_name(config.ScoreConfig(precision="fp32", fold_bn=False, compiled=False))
    'fp32, BatchNorm separate'
    """
    return resolve_variant(score_cfg, extractor, calibration_images)[0].label


def build_extractor(score_cfg: ScoreConfig, variant: Variant, extractor: str = EXTRACTOR,
                    weights: dict[str, Any] | None = None) -> Extractor:
    """The extractor ``extractor`` in ``variant`` (no rule applied), with ``weights`` (default:
    resolved from ``score_cfg.weights``) on ``score_cfg.device``."""
    if extractor not in FEATURE_EXTRACTORS_REGISTRY:
        raise ValueError(f"extractor={extractor!r} is not registered with torch-fidelity; "
                         f"known: {sorted(FEATURE_EXTRACTORS_REGISTRY)}")
    cls = FEATURE_EXTRACTORS_REGISTRY[extractor]
    if weights is None:
        weights = (resolve_weights(score_cfg.weights) if extractor == EXTRACTOR or score_cfg.weights
                   else {"path": None, "sha256": None, "origin": f"none needed by {extractor}",
                         "has_logits": True})
    layers = {m: cls.get_default_feature_layer_for_metric(m) for m in ("fid", "kid")}
    if weights["has_logits"]:
        layers["is"] = cls.get_default_feature_layer_for_metric("isc")
    where = device.resolve_device(score_cfg.device)
    widths = [w for w in WIDTHS if w in cls.get_provided_features_list()]
    try:
        module = create_feature_extractor(extractor, sorted({*layers.values(), *widths}),
                                          cuda=False, verbose=False,
                                          feature_extractor_weights_path=weights["path"])
    except RuntimeError as err:  # load_state_dict: passed our checks but still does not fit
        raise ValueError(f"torch-fidelity could not load {weights['path']}: {err}") from None
    # channels_last: oneDNN's preferred CPU layout (its fp32 speed against contiguous is the
    # "fp32-contiguous" row of benchmarks/extraction_precision.py); features change ~1e-6.
    module = module.to(device=where, memory_format=torch.channels_last)
    if variant.fold_bn:
        module = fold_batchnorm(module)
    return Extractor(extractor, module, layers, weights, where, variant.precision,
                     score_cfg.batch_size, library=f"torch-fidelity {torch_fidelity.__version__}",
                     fold_bn=variant.fold_bn, compiled=variant.compiled)
